"""``--chapter ID`` selects a chapter's tests by the ``chapter`` marker that conftest.py adds from the
registry: by file (tests/library/test_MODULE.py), by parameter (a chapter id) and by declaration
(``@pytest.mark.chapter``); an id outside the registry is an error, not an empty selection."""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
FILES = ["tests/library/test_patches.py", "tests/library/test_convert_vlm_towers.py", "tests/library/test_analysis.py",
         "tests/test_notebooks.py"]


def collect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-o", "addopts=", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_chapters_select_their_files_parameters_and_declared_tests():
    done = collect("--chapter", "09-vlm", "--chapter", "08-registers", *FILES)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert any(i.startswith("tests/library/test_convert_vlm_towers.py::") for i in ids)  # declared for the module
    assert "tests/library/test_analysis.py::test_block_tokens_are_the_input_of_the_final_norm" in ids  # for a test
    assert any(i.startswith("tests/test_notebooks.py::") and "[09-vlm]" in i for i in ids)  # a parameter
    assert not any("test_patches.py" in i or "[01-patches]" in i or "test_cls_attention" in i for i in ids)


def test_an_unknown_chapter_is_an_error():
    done = collect("--chapter", "99-nothing", "tests/test_chapter_marks.py")
    assert done.returncode != 0 and "99-nothing" in done.stdout + done.stderr and "01-patches" in done.stdout + done.stderr
