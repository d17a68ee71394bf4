"""Sphinx extension of the course site: launch buttons where Colab can open the page, and the link from
each reading chapter to its exercise.

- sphinx-book-theme adds its launch buttons (Colab) to every page that has a kernel, the executed
  reading pages included, whose source is a .md file Colab cannot open. The theme has no per-page
  option, so the button group is removed from every page that is not a student notebook.
- Each reading page ``book/NN-name`` gets, under its title, a box linking to its exercise notebook
  (on the site, and in Colab). Both come from the course registry, course.toml.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

COLAB = "https://colab.research.google.com/github"
_PAGES: dict = {"exercises": {}, "notebooks": set()}  # filled from the registry when the build starts

EXERCISE = """
:::{{admonition}} Exercise
:class: tip
This chapter's exercise is the notebook {{doc}}`{title} </{notebook}>`{colab}.
:::
"""
IN_COLAB = "; [open it in Colab]({url}) to run it on a GPU"


def _registry(srcdir: str):
    """The course registry module (``authoring.registry``) of the tree being built."""
    path = pathlib.Path(srcdir) / "authoring" / "registry.py"
    spec = importlib.util.spec_from_file_location("_course_registry", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def _init(app) -> None:
    registry = _registry(app.srcdir)
    info = registry.info()
    for c in registry.chapters():
        notebook = c.student_notebook.removesuffix(".ipynb")
        colab = ""  # Colab opens notebooks from github.com only
        if info.github:
            owner, name = info.github
            colab = IN_COLAB.format(url=f"{COLAB}/{owner}/{name}/blob/{info.branch}/{c.student_notebook}")
        _PAGES["exercises"][f"book/{c.id}"] = (notebook, f"Chapter {c.number} — {c.title}", colab)
        _PAGES["notebooks"].add(notebook)


def _add_exercise_link(app, docname: str, source: list[str]) -> None:
    found = _PAGES["exercises"].get(docname)
    if not found:
        return
    notebook, title, colab = found
    lines = source[0].splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("# "):  # the page's title (after the front matter)
            lines.insert(i + 1, EXERCISE.format(title=title, notebook=notebook, colab=colab))
            source[0] = "".join(lines)
            return


def _launch_buttons_on_notebooks_only(app, pagename, templatename, context, doctree) -> None:
    if pagename in _PAGES["notebooks"] or "header_buttons" not in context:
        return
    context["header_buttons"] = [b for b in context["header_buttons"] if b.get("label") != "launch-buttons"]


def setup(app):
    app.connect("builder-inited", _init)
    app.connect("source-read", _add_exercise_link)
    app.connect("html-page-context", _launch_buttons_on_notebooks_only, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
