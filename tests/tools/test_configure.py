"""`python3.11 tasks.py configure` makes the course an instructor's own in one step.

Runs in a copy of the tree (the files git knows, as they are now), never in the repository itself:
every student notebook must then install the library from the new repository, pinned to the release,
link to the new site, and the book's launch configuration and publishing workflow must follow.
"""

import json
import pathlib

import pytest
import yaml
from jupyter_book.config import yaml_to_sphinx
from sphinx_book_theme.header_buttons.launch import _split_repo_url

REPO = pathlib.Path(__file__).resolve().parents[2]
NEW = "https://github.com/someone/my-vit-course"


def _registry(run_in):
    code = "from authoring import registry; import json; i = registry.info(); " \
           "print(json.dumps([i.version, i.site_url, [(c.id, c.page_html) for c in registry.chapters()]]))"
    done = run_in("-c", code)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def configured(tree, run_in):
    done = run_in("-m", "authoring", "configure", "--repository", NEW + ".git", "--branch", "teach")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "git tag v" in done.stdout  # the next step is printed
    return tree


def _setup_source(notebook: pathlib.Path) -> str:
    nb = json.loads(notebook.read_text())
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


@pytest.mark.slow
def test_every_student_notebook_installs_from_the_new_repository(configured, run_in):
    version, site, chapters = _registry(run_in)
    assert site == "https://someone.github.io/my-vit-course/"
    for chapter_id, page in chapters:
        notebook = configured / "notebooks" / chapter_id / f"{chapter_id}.ipynb"
        setup = _setup_source(notebook)
        assert f'%pip install -q "git+{NEW}@v{version}"' in setup, (chapter_id, setup[:600])
        assert f"]({site}{page})" in notebook.read_text(), f"{chapter_id}: no link to its reading page"
        assert "vit-from-scratch" not in notebook.read_text(), f"{chapter_id} still names the old repository"


@pytest.mark.slow
def test_the_library_names_the_new_repository(configured, run_in):
    """What an installed library prints when a notebook of another release meets it."""
    version, _, _ = _registry(run_in)
    done = run_in("-c", "from vitcourse import version; print(version.install_url())")
    assert done.stdout.strip() == f"git+{NEW}@v{version}", done.stdout + done.stderr


@pytest.mark.slow
def test_launch_buttons_and_workflow_follow(configured):
    config = yaml.safe_load((configured / "_config.yml").read_text())
    assert config["repository"] == {**config["repository"], "url": NEW, "branch": "teach"}
    # What Jupyter Book hands to sphinx-book-theme, and the Colab URL the theme makes of it.
    theme = yaml_to_sphinx(config)[0]["html_theme_options"]
    org, repo = _split_repo_url(theme["repository_url"])
    colab = theme["launch_buttons"]["colab_url"].rstrip("/")
    path = f"{theme.get('path_to_docs', '').strip('/')}notebooks/03-vit/03-vit.ipynb"
    button = f"{colab}/github/{org}/{repo}/blob/{theme['repository_branch']}/{path}"
    assert button == "https://colab.research.google.com/github/someone/my-vit-course/blob/teach/notebooks/03-vit/03-vit.ipynb"
    workflow = yaml.safe_load((configured / ".github" / "workflows" / "book.yml").read_text())
    assert workflow[True]["push"]["branches"] == ["teach"]


@pytest.mark.slow
def test_everything_derived_is_in_sync_after_configure(configured, run_in):
    done = run_in("-c", "from authoring import derived, notebooks; print(derived.sync(True) + notebooks.sync(check=True))")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize("args,message", [
    (["--repository", "github.com/x/y"], "web address"),
    (["--repository", "https://gitlab.com/x/y"], "github.com only"),
    (["--repository", NEW, "--branch", "bad branch"], "not a git branch name"),
])
def test_bad_settings_are_refused(tree, run_in, args, message):
    done = run_in("-m", "authoring", "configure", *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_rewrite_changes_only_the_course_table():
    import tomllib

    from authoring import configure

    text = (REPO / "course.toml").read_text()
    new = tomllib.loads(configure.rewrite(text, {"repository": NEW, "site": "https://books.example.org/vit/"}))
    old = tomllib.loads(text)
    assert new["course"] == {**old["course"], "repository": NEW, "site": "https://books.example.org/vit/"}
    assert new["chapters"] == old["chapters"] and new["book"] == old["book"]
