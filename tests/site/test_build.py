"""The book builds with -W (warnings are errors) and holds every page of the table of contents."""

import pathlib

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]


def toc_files():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


@pytest.mark.slow
@pytest.mark.xdist_group("site")
def test_every_toc_page_is_built(built_site):
    for page in toc_files():
        assert (built_site / f"{page}.html").is_file(), f"{page}.html missing"


@pytest.mark.slow
@pytest.mark.xdist_group("site")
def test_student_notebooks_have_a_colab_button_and_no_outputs(built_site):
    for page in toc_files():
        if page.startswith("notebooks/"):
            html = (built_site / f"{page}.html").read_text()
            assert "colab.research.google.com/github/" in html, f"{page}: no Colab launch button"
            assert "cell_output" not in html, f"{page}: the student notebook should be shown unexecuted"


@pytest.mark.slow
@pytest.mark.xdist_group("site")
def test_scripts_are_served_by_the_site(built_site):
    for page in toc_files():
        html = (built_site / f"{page}.html").read_text()
        for needle in ("cdn.jsdelivr", "cdnjs.cloudflare", "unpkg.com/@jupyter-widgets", "mathjax@"):
            assert needle not in html, f"{page} loads {needle} from the network"
    assert (built_site / "vendor" / "mathjax" / "tex-chtml.js").is_file()


def test_every_chapter_page_is_in_the_toc():
    listed = set(toc_files())
    for md in (REPO / "book").glob("[0-9][0-9]-*.md"):
        assert f"book/{md.stem}" in listed, f"book/{md.name} is not in _toc.yml"
    for nb in (REPO / "notebooks").glob("*/*.ipynb"):
        assert f"notebooks/{nb.parent.name}/{nb.stem}" in listed, f"{nb} is not in _toc.yml"
