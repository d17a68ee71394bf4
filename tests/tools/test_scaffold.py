"""`python3.11 tasks.py new` scaffolds a chapter that passes the whole layout test and its own tests, with
no edit by hand: what lists every chapter (the table of contents, the intro, the README's count) follows.

Runs in a copy of the tree (the files git knows, as they are now), never in the repository itself.
"""

import pytest


@pytest.mark.slow
def test_new_chapter_passes_the_whole_layout_test_untouched(tree, run_in):
    intro, readme = (tree / "book" / "intro.md").read_text(), (tree / "README.md").read_text()
    done = run_in("-m", "authoring", "new", "10-test", "Test", "testmod")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "10-test has every part" in done.stdout
    for part in ("solutions/10-test/10-test.py", "solutions/10-test/10-test.ipynb",
                 "notebooks/10-test/10-test.ipynb", "book/10-test.md", "src/vitcourse/models/testmod.py",
                 "tests/chapters/test_10_test.py", "tests/chapters/bugs_10_test.py",
                 "tests/chapters/alternatives_10_test.py"):
        assert (tree / part).is_file(), part
    assert "notebooks/10-test/10-test" in (tree / "_toc.yml").read_text()
    assert "\n10. **Test** — " in (tree / "book" / "intro.md").read_text() and "\n10. " not in intro
    assert (tree / "README.md").read_text() == readme.replace("A course in nine chapters", "A course in ten chapters")
    tests = run_in("-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q", "-o", "addopts=",
                   "tests/test_layout.py", "tests/chapters/test_10_test.py")
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert " failed" not in tests.stdout and " passed" in tests.stdout


def test_existing_or_malformed_ids_are_refused(tree, run_in):
    for args, message in ((["01-patches", "Again", "patches"], "already in"),
                          (["9-x", "Bad", "x"], "use NN-name"),
                          (["98-bad", "Bad", "not-a-module"], "not a Python module name")):
        done = run_in("-m", "authoring", "new", *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr


def test_an_environment_of_another_tree_is_named(tree, run_in):
    """Without this tree's src/ on the path, the .venv's vitcourse is the repository's, not the copy's:
    the authoring steps and the test suite say so in one sentence instead of checking the wrong library."""
    outside = {"PYTHONPATH": str(tree)}
    for cmd in (["-m", "authoring", "layout"], ["-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q",
                                                 "tests/test_layout.py"]):
        done = run_in(*cmd, env=outside, timeout=300)
        assert done.returncode != 0 and "the environment belongs to another checkout" in done.stdout + done.stderr, \
            done.stdout[-2000:] + done.stderr[-2000:]
