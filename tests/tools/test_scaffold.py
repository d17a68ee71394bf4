"""`python3.11 tasks.py new` scaffolds a chapter that passes the layout test and its own tests.

Runs in a copy of the tree (the files git knows, as they are now), never in the repository itself.
"""

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_new_chapter_has_every_part_and_passes_its_tests(tree, run_in):
    done = run_in("-m", "tools.scaffold", "99-dummy", "A dummy chapter", "dummy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "99-dummy has every part" in done.stdout
    for part in ("solutions/99-dummy/99-dummy.py", "solutions/99-dummy/99-dummy.ipynb",
                 "notebooks/99-dummy/99-dummy.ipynb", "book/99-dummy.md", "src/vitcourse/models/dummy.py",
                 "tests/chapters/test_99_dummy.py", "tests/chapters/bugs_99_dummy.py",
                 "tests/chapters/alternatives_99_dummy.py"):
        assert (tree / part).is_file(), part
    assert "notebooks/99-dummy/99-dummy" in (tree / "_toc.yml").read_text()
    # The intro lists chapters by title; a real chapter adds its line there.
    intro = tree / "book" / "intro.md"
    intro.write_text(intro.read_text().replace(
        "\n\nEach chapter has", "\n99. **A dummy chapter** — a scaffolded example.\n\nEach chapter has", 1))
    tests = run_in("-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q", "tests/test_layout.py",
                 "tests/chapters/test_99_dummy.py", "-o", "addopts=")
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]


def test_existing_or_malformed_ids_are_refused(tree, run_in):
    for args, message in ((["01-patches", "Again", "patches"], "already in"),
                          (["9-x", "Bad", "x"], "use NN-name"),
                          (["98-bad", "Bad", "not-a-module"], "not a Python module name")):
        done = run_in("-m", "tools.scaffold", *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
