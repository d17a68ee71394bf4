"""Scaffold a new chapter: every part the layout test asks for, ready to be filled in.

    python -m tools.scaffold 09-vlm "A ViT inside a vision-language model" vlm
    (or: python3.11 tasks.py new 09-vlm "A ViT inside a vision-language model" vlm)

Writes the registry entry (src/vitcourse/course.toml), the notebook source
(solutions/ID/ID.py: set-up cell copied from chapter 1, one worked exercise with a visible and a
hidden check), the reading page (book/ID.md), the reference module
(src/vitcourse/models/MODULE.py), the chapter's tests (tests/chapters/test_NN_name.py, importing one
plausible bug from bugs_NN_name.py and one correct alternative from alternatives_NN_name.py beside
it), then generates the .ipynb, the student notebook and the table of contents. Nothing that exists is overwritten.
"""

from __future__ import annotations

import argparse
import keyword
import pathlib
import subprocess
import sys
import textwrap

from tools import derived, layout, notebooks
from vitcourse import course, env

ROOT = pathlib.Path(__file__).resolve().parent.parent

MODULE = '''"""Chapter {number}: {title}.

The reference implementation of every graded piece of the chapter. Replace ``token_norms`` (the
worked example the scaffold starts from) with the chapter's own pieces.
"""

from __future__ import annotations

import torch

__all__ = ["token_norms"]


def token_norms(tokens: torch.Tensor) -> torch.Tensor:
    """L2 norm of every token: (B, N, D) -> (B, N)."""
    return tokens.pow(2).sum(dim=-1).sqrt()
'''

SOURCE = '''# %% [markdown]
# # Chapter {number} — {title}
#
# One paragraph on what this chapter is about and why it matters.
#
# **You will**
#
# 1. compute the norm of every token (`token_norms`).
#
{imports}
#
# Each exercise is followed by a visible check. Hidden checks run when your notebook is graded.
# {points} points in all.

{setup}

# %% [markdown]
# ## 1. The first idea
#
# The concept, with maths and a figure.
#
# ### Exercise 1 — `token_norms` ({points} points)
#
# Write `token_norms(tokens)` that returns the L2 norm of each token: `(B, N, D)` -> `(B, N)`.

# %% nbgrader={{"grade": false, "grade_id": "token_norms", "locked": false, "schema_version": 3, "solution": true, "task": false}}
def token_norms(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, D) tokens -> (B, N) norms."""
    ### BEGIN SOLUTION
    return tokens.norm(dim=-1)
    ### END SOLUTION


# %% nbgrader={{"grade": true, "grade_id": "test_token_norms", "locked": true, "points": {points}, "schema_version": 3, "solution": false, "task": false}}
checks.check_close(token_norms(torch.tensor([[[3.0, 4.0]]])), torch.tensor([[5.0]]), name="the norm of (3, 4)")
print("token_norms: visible checks passed")
### BEGIN HIDDEN TESTS
from {module} import token_norms as reference
g = torch.Generator().manual_seed(env.grading_seed())
for _ in range(3):
    B, N, D = (int(v) for v in torch.randint(1, 9, (3,), generator=g))
    x = torch.randn(B, N, D, generator=g)
    checks.check_close(token_norms(x), reference(x), name=f"token_norms on {{tuple(x.shape)}}")
### END HIDDEN TESTS

# %% [markdown]
# ## Takeaways
#
# - What to remember from this chapter.
'''

PAGE = '''---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# {number}. {title}

What the reader will learn, and what the chapter assumes.

```{{code-cell}} ipython3
import torch
from {module} import token_norms

print(token_norms(torch.tensor([[[3.0, 4.0]]])))
```

## Summary

- What to remember.

## Exercises

The notebook {{doc}}`../notebooks/{id}/{id}` has you write `token_norms`.
'''

TESTS = '''"""Chapter {number} graded tests, checked both ways: the solution passes on 10 seeds, each plausible bug
(bugs_{test_name}.py) loses points, each different correct answer (alternatives_{test_name}.py) keeps them."""

from alternatives_{test_name} import ALTERNATIVES  # noqa: F401
from bugs_{test_name} import BUGS  # noqa: F401
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "{notebook}"
'''

BUGS_MODULE = '''"""Chapter {number}: plausible student bugs, each of which must lose points, and the BUGS dict."""

from nbexec import Variant


def token_norms_squared(tokens):
    """Forgets the square root."""
    return tokens.pow(2).sum(dim=-1)


BUGS = {{
    "token_norms: no square root": Variant({{"token_norms": token_norms_squared}}, "test_token_norms"),
}}
'''

ALTERNATIVES_MODULE = '''"""Chapter {number}: different but correct answers, each of which must keep full marks, and the
ALTERNATIVES dict."""

from nbexec import Variant


def token_norms_loop(tokens):
    """A correct answer written with loops."""
    import torch

    return torch.tensor([[float(t.dot(t)) ** 0.5 for t in row] for row in tokens])


ALTERNATIVES = {{
    "token_norms with loops": Variant({{"token_norms": token_norms_loop}}, "test_token_norms"),
}}
'''

ENTRY = '''
[[chapters]]
id = "{id}"
title = "{title}"
module = "{module_name}"
'''


def setup_cell() -> str:
    """Chapter 1's set-up cell, as text: every chapter installs and configures the same way (the
    chapter's own link to its reading page is added by the stamp of ``tools.derived``)."""
    first = ROOT / course.chapters()[0].source
    text = first.read_text(encoding="utf-8")
    start = text.index("\n# %%\n") + 1
    return text[start:text.index("\n# %%", start + 5)].rstrip("\n")


def chapter_module(chapter: course.Chapter, kind: str) -> str:
    """Where a chapter's plausible bugs (kind "bugs") or correct alternatives ("alternatives") live, beside
    its test file, which imports their ``BUGS`` and ``ALTERNATIVES`` dicts."""
    return f"tests/chapters/{kind}_{chapter.test_name}.py"


def scaffold(chapter_id: str, title: str, module_name: str) -> list[pathlib.Path]:
    """Write every part of a new chapter; returns the files written."""
    if not course.ID_PATTERN.match(chapter_id):
        raise ValueError(f"chapter id {chapter_id!r}: use NN-name, e.g. '09-vlm'")
    if any(c.id == chapter_id for c in course.chapters()):
        raise ValueError(f"chapter {chapter_id} is already in {course.REGISTRY.name}")
    if not module_name.isidentifier() or keyword.iskeyword(module_name):
        raise ValueError(f"module {module_name!r} is not a Python module name; use e.g. 'vlm'")
    if '"' in title:
        raise ValueError("the title must not contain double quotes")
    chapter = course.Chapter(chapter_id, title, module_name)
    values = dict(id=chapter.id, number=chapter.number, title=title, module=chapter.module, test_name=chapter.test_name,
                  points=chapter.points, notebook=chapter.source_notebook, setup=setup_cell(),
                  imports="\n".join("# " + line for line in textwrap.wrap(env.allowed_imports_sentence(), 104)))
    files = {
        chapter.module_file: MODULE.format(**values),
        chapter.source: SOURCE.format(**values),
        chapter.page: PAGE.format(**values),
        chapter.tests: TESTS.format(**values),
        chapter_module(chapter, "bugs"): BUGS_MODULE.format(**values),
        chapter_module(chapter, "alternatives"): ALTERNATIVES_MODULE.format(**values),
    }
    existing = [path for path in files if (ROOT / path).exists()]
    if existing:
        raise FileExistsError(f"not overwriting {', '.join(existing)}: remove them or pick another id")
    for path, text in files.items():
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(text, encoding="utf-8")
    with course.REGISTRY.open("a", encoding="utf-8") as registry:
        registry.write(ENTRY.format(id=chapter_id, title=title, module_name=module_name))
    course._registry.cache_clear()
    derived.sync()  # the table of contents, and the new source's set-up stamp and reading link
    notebooks.sync([ROOT / chapter.source])
    return [ROOT / p for p in files]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("id", help="NN-name, e.g. 09-vlm")
    parser.add_argument("title", help='e.g. "A ViT inside a vision-language model"')
    parser.add_argument("module", help="name of the reference module under vitcourse.models, e.g. vlm")
    args = parser.parse_args(argv)
    try:
        written = scaffold(args.id, args.title, args.module)
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))
    release = subprocess.run([sys.executable, "-m", "autograder.release", args.id], cwd=ROOT)
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")
    problems = layout.problems(course.chapter(args.id))
    print("\n".join(problems) or f"{args.id} has every part; next: write it, then `python3.11 tasks.py sync`")
    return 1 if problems or release.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
