"""Scaffold a new chapter: every part the layout asks for, ready to be filled in.

    python -m authoring new 09-vlm "A ViT inside a vision-language model" vlm [--summary "..."]
    (or: python3.11 tasks.py new 09-vlm "A ViT inside a vision-language model" vlm)

Adds the registry entry (course.toml) and writes every part an author writes (``layout.AUTHORED``),
each from a template below: the notebook source (solutions/ID/ID.py: set-up cell copied from chapter
1, one worked exercise with a visible and a hidden check), the reading page (book/ID.md), the reference
module (src/vitcourse/models/MODULE.py), the chapter's tests, plausible bugs and correct alternatives
(tests/chapters/). Then ``sync`` generates the rest (the .ipynb, the student notebook, the table of
contents, the intro's list of chapters, the README's count) and the layout is checked. Nothing that
exists is overwritten.
"""

from __future__ import annotations

import argparse
import keyword
import pathlib
import sys
import textwrap

from authoring import registry
from authoring.registry import ROOT, Chapter

SUMMARY = "what the chapter covers, in one sentence (its summary in course.toml)."

MODULE = '''"""Chapter {number}: {title}.

The reference implementation of every graded piece of the chapter. Replace ``row_norms`` (the
worked example the scaffold starts from) with the chapter's own pieces.
"""

from __future__ import annotations

import torch

__all__ = ["row_norms"]


def row_norms(tokens: torch.Tensor) -> torch.Tensor:
    """L2 norm of every token (each row of the last two dimensions): (B, N, D) -> (B, N)."""
    return tokens.pow(2).sum(dim=-1).sqrt()
'''

SOURCE = '''# %% [markdown]
# # Chapter {number} — {title}
#
# One paragraph on what this chapter is about and why it matters.
#
# **You will**
#
# 1. compute the norm of every token (`row_norms`).
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
# ### Exercise 1 — `row_norms` ({points} points)
#
# Write `row_norms(tokens)` that returns the L2 norm of each token: `(B, N, D)` -> `(B, N)`.

# %% nbgrader={{"grade": false, "grade_id": "row_norms", "locked": false, "schema_version": 3, "solution": true, "task": false}}
def row_norms(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, D) tokens -> (B, N) norms."""
    ### BEGIN SOLUTION
    return tokens.norm(dim=-1)
    ### END SOLUTION


# %% nbgrader={{"grade": true, "grade_id": "test_row_norms", "locked": true, "points": {points}, "schema_version": 3, "solution": false, "task": false}}
checks.check_close(row_norms(torch.tensor([[[3.0, 4.0]]])), torch.tensor([[5.0]]), name="the norm of (3, 4)",
                   mistakes={{"the sum of squares without its square root": torch.tensor([[25.0]])}})
print("row_norms: visible checks passed")
### BEGIN HIDDEN TESTS
from {module} import row_norms as reference
g = torch.Generator().manual_seed(env.grading_seed())
for _ in range(3):
    B, N, D = (int(v) for v in torch.randint(1, 9, (3,), generator=g))
    x = torch.randn(B, N, D, generator=g)
    checks.check_close(row_norms(x), reference(x), name=f"row_norms on {{tuple(x.shape)}}")
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
from {module} import row_norms

print(row_norms(torch.tensor([[[3.0, 4.0]]])))
```

## Summary

- What to remember.

## Exercises

The notebook {{doc}}`../notebooks/{id}/{id}` has you write `row_norms`.
'''

TESTS = '''"""Chapter {number}'s own tests (none yet): the checks every chapter runs (tests/chapters/solution_checks.py: the
solution on ten seeds, each plausible bug of bugs_{test_name}.py and each alternative of
alternatives_{test_name}.py, the student's view) are added by tests/chapters/conftest.py from the registry."""
'''

BUGS_MODULE = '''"""Chapter {number}: plausible student bugs, each of which must lose points, and the BUGS dict."""

from nbexec import Variant


def row_norms_squared(tokens):
    """Forgets the square root."""
    return tokens.pow(2).sum(dim=-1)


BUGS = {{
    "row_norms: no square root": Variant({{"row_norms": row_norms_squared}}, "test_row_norms",
                                         check="test_row_norms", hint="without its square root"),
}}
'''

ALTERNATIVES_MODULE = '''"""Chapter {number}: different but correct answers, each of which must keep full marks, and the
ALTERNATIVES dict."""

from nbexec import Variant


def row_norms_loop(tokens):
    """A correct answer written with loops."""
    import torch

    return torch.tensor([[float(t.dot(t)) ** 0.5 for t in row] for row in tokens])


ALTERNATIVES = {{
    "row_norms with loops": Variant({{"row_norms": row_norms_loop}}, "test_row_norms"),
}}
'''

ENTRY = '''
[[chapters]]
id = "{id}"
title = "{title}"
summary = "{summary}"
module = "{module_name}"
'''

# One template per part an author writes (layout.AUTHORED).
TEMPLATES = {"module_file": MODULE, "source": SOURCE, "page": PAGE, "tests": TESTS, "bugs": BUGS_MODULE,
             "alternatives": ALTERNATIVES_MODULE}


def setup_cell() -> str:
    """Chapter 1's set-up cell, as text: every chapter installs and configures the same way (the
    chapter's own link to its reading page is added by the stamp of ``authoring.derived``)."""
    first = ROOT / registry.chapters()[0].source
    text = first.read_text(encoding="utf-8")
    start = text.index("\n# %%\n") + 1
    return text[start:text.index("\n# %%", start + 5)].rstrip("\n")


def scaffold(chapter_id: str, title: str, module_name: str, summary: str = SUMMARY) -> list[pathlib.Path]:
    """Add the chapter to the registry and write every part an author writes; returns the files written."""
    if not registry.ID_PATTERN.match(chapter_id):
        raise ValueError(f"chapter id {chapter_id!r}: use NN-name, e.g. '09-vlm'")
    if any(c.id == chapter_id for c in registry.chapters()):
        raise ValueError(f"chapter {chapter_id} is already in {registry.REGISTRY.name}")
    if not module_name.isidentifier() or keyword.iskeyword(module_name):
        raise ValueError(f"module {module_name!r} is not a Python module name; use e.g. 'vlm'")
    if '"' in title + summary or "\\" in title + summary:
        raise ValueError("the title and the summary must not contain double quotes or backslashes")
    from authoring import layout  # after the checks: a refused request answers at once
    from vitcourse import env

    chapter = Chapter(chapter_id, title, module_name, summary=summary)
    values = dict(id=chapter.id, number=chapter.number, title=title, module=chapter.module, test_name=chapter.test_name,
                  points=chapter.points, notebook=chapter.source_notebook, setup=setup_cell(),
                  imports="\n".join("# " + line for line in textwrap.wrap(env.allowed_imports_sentence(), 104)))
    files = {getattr(chapter, part): TEMPLATES[part].format(**values) for part in layout.AUTHORED}
    existing = [path for path in files if (ROOT / path).exists()]
    if existing:
        raise FileExistsError(f"not overwriting {', '.join(existing)}: remove them or pick another id")
    for path, text in files.items():
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(text, encoding="utf-8")
    with registry.REGISTRY.open("a", encoding="utf-8") as toml:
        toml.write(ENTRY.format(id=chapter_id, title=title, summary=summary, module_name=module_name))
    registry.reload()
    return [ROOT / p for p in files]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("id", help="NN-name, e.g. 09-vlm")
    parser.add_argument("title", help='e.g. "A ViT inside a vision-language model"')
    parser.add_argument("module", help="name of the reference module under vitcourse.models, e.g. vlm")
    parser.add_argument("--summary", default=SUMMARY, help="the chapter's line in the intro (default: a placeholder)")
    args = parser.parse_args(argv)
    try:
        written = scaffold(args.id, args.title, args.module, args.summary)
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")
    from authoring import layout, sync

    sync.sync(chapter_ids=[args.id])  # the .ipynb, the student notebook, the table of contents, the intro ...
    problems = layout.problems(registry.chapter(args.id))
    print("\n".join(problems) or f"{args.id} has every part; next: write it, then `python3.11 tasks.py sync`")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
