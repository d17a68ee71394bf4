"""Which branches of each graded reference a chapter's graded cells exercise.

The hidden tests compare a student's function with the course's reference on varied inputs. A branch
of the reference that no graded cell reaches is a part of the specification nobody checks (remove
the branch that handles ``min_pixels`` and the points stay). This module runs a chapter's graded cells
(visible and hidden, seed 0) under ``coverage`` with branch measurement, and reports for each
exercise whose name the reference modules define (a function, or a class with its methods) the
branches and lines the graded cells never reached.

    .venv/bin/python tests/hidden_coverage.py                 # every chapter, one table
    .venv/bin/python tests/hidden_coverage.py 09-vlm          # one chapter

Besides the exercises' references, every other function of the chapter's own module (the registry's
``module``) that the graded cells call is measured too (``smart_resize`` behind ``visual_token_count``):
its branches are part of the specification the student's code is compared with. Functions of other
modules that the notebook merely uses (chapter 3's ``Block`` inside chapter 8's model) are not.

A branch that the exercise's specification states (an error for a value it forbids) is reached by
calling the reference on it too, next to the student's code, e.g.
``for fn in (pool, ref.pool): checks.check_raises(lambda: fn(t, "max"), ValueError)``.

A line of a reference that is outside what a chapter's exercise asks (an option another chapter
grades, an error for a case the exercise excludes) carries the comment ``# not graded in 03-vit: <why>``
(one or more chapter ids) or ``# not graded: <why>`` (no chapter) and is left out of the measure.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import pkgutil
import sys
import tempfile
from dataclasses import dataclass

import coverage

from nbexec import NotebookRun, _defines

EXCLUDE = r"# not graded:"
# Where graded references live: the models and the few library modules that hold an exercise's reference.
REFERENCE_PACKAGES = ("vitcourse.models",)
REFERENCE_MODULES = ("vitcourse.augment", "vitcourse.flops")


@dataclass
class Coverage:
    exercise: str
    reference: str  # module:qualname
    branches: int
    missed_branches: list  # [[from_line, to_line], ...]
    missed_lines: list
    executed: bool

    @property
    def complete(self) -> bool:
        return not self.executed or (not self.missed_branches and not self.missed_lines)


def reference_modules() -> list:
    names = list(REFERENCE_MODULES)
    for package in REFERENCE_PACKAGES:
        pkg = importlib.import_module(package)
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]
    return [importlib.import_module(n) for n in names]


def exercises(run: NotebookRun) -> list[str]:
    """Names the student writes: defined at top level of the solution cells."""
    names: list[str] = []
    for cell in run.cells:
        if cell.kind == "solution":
            names += sorted(_defines(cell.code) - set(names))
    return names


def measure(run: NotebookRun) -> list[Coverage]:
    """Run every graded cell once more under coverage; one row per exercise with a reference."""
    modules = reference_modules()
    found = {}
    for name in exercises(run):
        for module in modules:
            if hasattr(module, name) and getattr(getattr(module, name), "__module__", None) == module.__name__:
                found[name] = module
                break
    files = sorted({pathlib.Path(m.__file__).resolve() for m in found.values()})
    if not files:
        return []
    cov = coverage.Coverage(branch=True, data_file=None, include=[str(f) for f in files])
    cov.exclude(EXCLUDE)
    cov.exclude(rf"# not graded in [\w, -]*{run.path.parent.name}")
    cov.start()
    try:
        run.rerun_tests(seed=0)
    finally:
        cov.stop()
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "coverage.json"
        cov.json_report(outfile=str(out))
        report = {pathlib.Path(k).resolve(): v for k, v in json.loads(out.read_text())["files"].items()}
    rows = []
    for name, module in found.items():
        functions = report.get(pathlib.Path(module.__file__).resolve(), {"functions": {}})["functions"]
        rows.append(_row(name, f"{module.__name__}:{name}",
                         {k: v for k, v in functions.items() if k == name or k.startswith(name + ".")}))
    own = _chapter_module(run)
    for file, data in report.items():
        module = next(m.__name__ for m in found.values() if pathlib.Path(m.__file__).resolve() == file)
        if module != own:
            continue
        for qualname, region in data["functions"].items():
            owner = qualname.split(".")[0]
            if owner and owner not in found and region["executed_lines"]:
                rows.append(_row(f"(called) {qualname}", f"{module}:{qualname}", {qualname: region}))
    return rows


def _chapter_module(run: NotebookRun) -> str | None:
    from authoring import registry

    try:
        return registry.chapter(run.path.parent.name).module
    except (KeyError, ValueError):
        return None


def _row(name: str, reference: str, regions: dict) -> Coverage:
    branches = sum(r["summary"]["num_branches"] for r in regions.values())
    missed_b = sorted(b for r in regions.values() for b in r["missing_branches"])
    missed_l = sorted(line for r in regions.values() for line in r["missing_lines"])
    executed = any(r["executed_lines"] for r in regions.values())
    return Coverage(name, reference, branches, missed_b, missed_l, executed)


def describe(rows: list[Coverage]) -> str:
    lines = []
    for r in rows:
        if not r.executed:
            state = "not called by the graded cells (compared with another expected value)"
        elif r.complete:
            state = f"every branch ({r.branches}) and line reached"
        else:
            state = (f"{r.branches - len(r.missed_branches)}/{r.branches} branches; missed branches {r.missed_branches}, "
                     f"lines {r.missed_lines}")
        lines.append(f"  {r.exercise:<28} {r.reference:<48} {state}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the tree's authoring package
    from authoring import registry

    chapters = [c for c in registry.chapters() if not argv or c.id in argv]
    incomplete = 0
    for chapter in chapters:
        run = NotebookRun(f"solutions/{chapter.id}/{chapter.id}.ipynb")
        rows = measure(run)
        incomplete += sum(not r.complete for r in rows)
        print(f"{chapter.id}:\n{describe(rows) or '  (no exercise has a reference in the library)'}", flush=True)
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
