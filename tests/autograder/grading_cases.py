"""Student submissions for the robustness suite, built from a chapter's source and release.

Every case is a notebook (or raw bytes) a student could plausibly hand in, with the outcome the
grader must produce. Nothing here knows a chapter by name: the cases are derived from the
notebooks' nbgrader cells, so a new chapter is covered as soon as it exists.
"""

from __future__ import annotations

import ast
import builtins
import copy
import importlib
import importlib.util
import inspect
import itertools
import json
import pathlib
import pkgutil
import sys
from dataclasses import dataclass, field

from autograder import cells, exercises, flags


@dataclass
class Case:
    content: bytes
    filename: str
    expect_score: float | None = None  # exact total, None: not checked
    expect_status: str = "graded"
    expect_zero_cells: set = field(default_factory=set)  # graded cells that must score 0
    expect_flags: list[str] = field(default_factory=list)  # substrings, each in some flag
    expect_timeout: bool = False
    expect_memory: bool = False
    expect_repaired: bool | None = None


def answers(source: dict) -> dict[str, str]:
    """{grade id: the solution code as a student would write it (markers removed)}."""
    return {gid: cells.solution_code(c) for gid, c in cells.answers(source).items()}


def points(release: dict) -> dict[str, float]:
    return {gid: cells.points(c) for gid, c in cells.tests(release).items()}


def filled(release: dict, source: dict, which=None, replace: dict | None = None) -> dict:
    """The release with answers from the solution (``which``: only these ids), then ``replace``."""
    nb = copy.deepcopy(release)
    sol = answers(source)
    for c in nb["cells"]:
        gid = cells.grade_id(c)
        if gid in sol and (which is None or gid in which):
            c["source"] = sol[gid]
        if replace and gid in replace:
            c["source"] = replace[gid]
    return nb


def dump(nb: dict) -> bytes:
    return (json.dumps(nb, indent=1) + "\n").encode()


def find(nb: dict, gid: str) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if cells.grade_id(c) == gid)


def code_cell(text: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": text}


# ------------------------------------------------------------------ cases every chapter gets
def basic_cases(name: str, source: dict, release: dict) -> dict[str, Case]:
    """Solution, release, a partial submission (exact score) and a corrupt file."""
    fn = f"{name}.ipynb"
    full = dump(filled(release, source))
    ids = list(answers(source))
    # first answer only: exactly the points of the test cells before the second answer cell
    second = find(release, ids[1]) if len(ids) > 1 else len(release["cells"])
    partial_points = sum(cells.points(c) for c in release["cells"][:second])
    return {
        "solution": Case(full, fn, expect_score=cells.total_points(release), expect_repaired=False),
        "release": Case(dump(release), fn, expect_score=0.0, expect_repaired=False),
        "partial": Case(dump(filled(release, source, which={ids[0]})), fn, expect_score=partial_points),
        "corrupt": Case(full[: len(full) // 2], fn, expect_status="corrupt", expect_score=0.0),
    }


def _stripped(nb: dict) -> dict:
    for c in nb["cells"]:
        c["metadata"] = {}
    return nb


def _tests_edited(nb: dict) -> dict:
    """The first test cell deleted, the second emptied of its checks."""
    ids = list(cells.tests(nb))
    nb["cells"][find(nb, ids[1])]["source"] = "# I do not like this test\npass\n"
    del nb["cells"][find(nb, ids[0])]
    return nb


def _to_markdown(nb: dict, gid: str) -> dict:
    cell = nb["cells"][find(nb, gid)]
    cell["cell_type"] = "markdown"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)
    return nb


def _inserted(nb: dict, gid: str) -> dict:
    i = find(nb, gid)
    nb["cells"][i:i] = [{"cell_type": "markdown", "metadata": {}, "source": "My notes before the exercise."},
                        code_cell("MY_HELPER_CONSTANT = 3\nprint('a cell I added')")]
    nb["cells"].append(code_cell("print(MY_HELPER_CONSTANT)"))
    return nb


def structural_cases(name: str, source: dict, release: dict, separate: bool) -> dict[str, Case]:
    """Damaged but complete solutions: each must get full marks, repaired. ``separate``: one student
    per kind of damage; else one student with all of them (one grading run instead of five)."""
    fn, total = f"{name}.ipynb", cells.total_points(release)
    full = filled(release, source)
    ids = list(answers(source))
    if not separate:
        nb = _inserted(_to_markdown(_tests_edited(copy.deepcopy(full)), ids[1]), ids[0])
        return {"mangled": Case(dump(_stripped(nb)), f"Copy of {name} (2).ipynb", expect_score=total,
                                expect_repaired=True)}
    return {
        "stripped": Case(dump(_stripped(copy.deepcopy(full))), fn, expect_score=total, expect_repaired=True),
        "tests-edited": Case(dump(_tests_edited(copy.deepcopy(full))), fn, expect_score=total, expect_repaired=True),
        "to-markdown": Case(dump(_to_markdown(copy.deepcopy(full), ids[1])), fn, expect_score=total,
                            expect_repaired=True),
        "inserted": Case(dump(_inserted(copy.deepcopy(full), ids[0])), fn, expect_score=total, expect_repaired=True),
        "renamed": Case(dump(full), f"Copy of {name} (2).ipynb", expect_score=total),
    }


def hostile_cases(name: str, source: dict, release: dict) -> dict[str, Case]:
    """Expensive misbehaviour: a loop, 8 GB, os._exit, 50 MB of output, warnings on stderr."""
    fn, total = f"{name}.ipynb", cells.total_points(release)
    sol = answers(source)
    first = next(iter(sol))
    full = filled(release, source)

    def with_prefix(code: str) -> dict:
        return filled(release, source, replace={first: code + "\n" + sol[first]})

    def appended(code: str) -> dict:
        nb = copy.deepcopy(full)
        nb["cells"].append(code_cell(code))
        return nb

    noisy = sol[first] + "\nimport sys, warnings\nwarnings.warn('this API is deprecated', " \
        "DeprecationWarning, stacklevel=1)\nsys.stderr.write('Warning: something noisy\\n')\n"
    return {
        "infinite-loop": Case(dump(appended("while True:\n    pass")), fn, expect_score=total, expect_timeout=True),
        # 8 GB of address space, never touched: the machine would grant it; the kernel's limit refuses
        "huge-alloc": Case(dump(appended("import torch\n_big = torch.empty(2_000_000_000)")), fn,
                           expect_score=total, expect_memory=True),
        "os-exit": Case(dump(with_prefix("import os\nos._exit(0)")), fn, expect_status="crashed", expect_score=0.0),
        "big-print": Case(dump(with_prefix("print('x' * 50_000_000)")), fn, expect_score=total),
        "stderr-warning": Case(dump(filled(release, source, replace={first: noisy})), fn, expect_score=total),
    }


# ------------------------------------------------------------------ flags
def reference_for(names: set[str]) -> tuple[str, str] | None:
    """(exercise name, ``vitcourse.models`` module) of the first exercise the library implements."""
    import vitcourse.models as models

    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"vitcourse.models.{info.name}")
        for name in sorted(names):
            if inspect.getmodule(getattr(module, name, None)) is module:
                return name, module.__name__
    return None


def loophole_answers(release: dict) -> dict[str, tuple[str, str]]:
    """{answer id: (code that lets the reference do the work, expected flag text)} for the answers
    that subclass a reference class or are handed a reference object (see ``autograder.flags``)."""
    ex = exercises.exercises(release)
    code = [cells.source(c) for c in release["cells"] if c.get("cell_type") == "code"]
    trees = [t for t in map(exercises.parse, code) if t]
    names = exercises.Names(trees)
    out = {}
    for gid, cell in cells.answers(release).items():
        tree = exercises.parse(cells.source(cell))
        if tree is None:
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(exercises.is_reference(names.resolve(b)) for b in node.bases):
                for m in node.body:
                    if isinstance(m, ast.FunctionDef) and m.name in ex.methods.get(node.name, ()):
                        args = ", ".join(a.arg for a in m.args.args[1:])
                        m.body = ast.parse(f"return super().{m.name}({args})").body
                out[gid] = (ast.unparse(tree), "super().")
            elif isinstance(node, ast.FunctionDef) and node.name in ex.handed:
                params = [a.arg for a in node.args.args]
                held = next(p for i, p in enumerate(params) if i in ex.handed[node.name] or p in ex.handed[node.name])
                node.body = ast.parse(f"return {held}({', '.join(p for p in params if p != held)})").body
                out[gid] = (ast.unparse(tree), "the reference object it is handed")
    return out


def cheat_cases(name: str, source: dict, release: dict, cheap: bool) -> dict[str, Case]:
    """Submissions that must be flagged. ``cheap``: one student, the release with every cheat at
    once (the other answers are stubs, so it runs in seconds); else one complete solution per cheat."""
    fn = f"{name}.ipynb"
    sol = answers(source)
    cheats: dict[str, tuple[str, str]] = dict(loophole_answers(release))
    by_name = {n: gid for gid in sol if gid not in cheats for n in exercises.exercises(
        {"cells": [cells.answers(release)[gid]]}).names}
    found = reference_for(set(by_name))
    if found:
        cheats[by_name[found[0]]] = (f"from {found[1]} import {found[0]}\n", "the reference")
    patch = code_cell("import torch\ntorch.allclose = lambda *args, **kwargs: True\n")
    if cheap:
        nb = filled(release, source, which=set(), replace={gid: code for gid, (code, _) in cheats.items()})
        nb["cells"].append(patch)
        return {"cheater": Case(dump(nb), fn, expect_flags=[f for _, f in cheats.values()] + ["torch.allclose"])}
    out = {}
    for k, (gid, (code, flag)) in enumerate(sorted(cheats.items())):
        out["reference" if flag == "the reference" else f"loophole{k}"] = Case(
            dump(filled(release, source, replace={gid: code})), fn, expect_flags=[flag])
    nb = filled(release, source)
    nb["cells"].insert(find(nb, next(iter(sol))) + 1, patch)
    out["monkeypatch"] = Case(dump(nb), fn, expect_flags=["torch.allclose"])
    return out


# ------------------------------------------------------------------ plausible bugs from a chapter's tests
def plausible_bugs(bugs_file: pathlib.Path) -> dict[str, tuple[dict, set]]:
    """{label: ({function name: buggy function}, {graded cells that must fail})} for the entries of a
    chapter's ``BUGS`` (``tests/chapters/bugs_NN_name.py``, named by the registry) that replace names
    with objects (not those derived from the solution's namespace). A module that cannot be imported,
    or has no ``BUGS``, fails here as it fails its chapter's tests."""
    if str(bugs_file.parent) not in sys.path:
        sys.path.insert(0, str(bugs_file.parent))  # a bugs module imports its siblings
    module = importlib.import_module(bugs_file.stem)
    return {label: (dict(variant.replace), set(variant.cells)) for label, variant in module.BUGS.items()
            if isinstance(variant.replace, dict)}


def pasted_definition(name: str, bug, bound: set[str], factories: bool = True) -> str | None:
    """Code that binds ``name`` to ``bug`` in a notebook whose names are ``bound``, or None when it cannot
    be written: a module-level function is pasted as it is; with ``factories``, a function made by a
    factory (``make_masking(inverted=True)``) is pasted as the factory and the call, when every argument
    that differs from the factory's default is a literal."""
    if not inspect.isfunction(bug) or bug.__name__ == "<lambda>":
        return None
    if bug.__qualname__ == bug.__name__:
        used = set(inspect.getclosurevars(bug).globals)
        return inspect.getsource(bug) + f"\n{name} = {bug.__name__}\n" if used <= bound else None
    if not factories:
        return None
    outer, _, inner = bug.__qualname__.partition(".<locals>.")
    factory = bug.__globals__.get(outer)
    if "." in outer or "<locals>" in inner or not inspect.isfunction(factory) or \
            not set(inspect.getclosurevars(factory).globals) <= bound:
        return None
    defaults = {k: p.default for k, p in inspect.signature(factory).parameters.items()}
    given = {k: v for k, v in inspect.getclosurevars(bug).nonlocals.items() if k in defaults and v is not defaults[k]}
    try:
        if any(ast.literal_eval(repr(v)) != v for v in given.values()):
            return None
    except (ValueError, SyntaxError):
        return None
    call = ", ".join(f"{k}={v!r}" for k, v in given.items())
    return inspect.getsource(factory) + f"\n{name} = {outer}({call})\n"


def _bound_names(nb: dict) -> set[str]:
    names = set(dir(builtins))
    for c in nb["cells"]:
        tree = exercises.parse(cells.source(c)) if c.get("cell_type") == "code" else None
        for node in ast.walk(tree) if tree else []:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {a.asname or a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def bug_case(name: str, source: dict, release: dict, bugs: dict) -> dict[str, Case]:
    """The first bug (sorted by label; plain functions before those made by a factory) that can be pasted
    into its answer cell (``pasted_definition``) and does not use the reference (which would be
    flagged). It must lose the cells its test says. The answers after it are left as stubs."""
    sol, bound = answers(source), _bound_names(source)
    for factories, (_, (overrides, must_fail)) in itertools.product((False, True), sorted(bugs.items())):
        replace = {}
        for fname, bug in overrides.items():
            gid = next((g for g, s in sol.items() if f"def {fname}(" in s), None)
            pasted = pasted_definition(fname, bug, bound, factories) if gid else None
            if pasted is None:
                break
            replace[gid] = replace.get(gid, sol[gid]) + "\n\n" + pasted
        else:
            # the answers up to the buggy one: later cells fail fast instead of training for nothing
            ids = list(sol)
            upto = set(ids[: max(ids.index(g) for g in replace) + 1])
            nb = filled(release, source, which=upto, replace=replace)
            if must_fail <= set(points(release)) and not flags.flag_notebook(nb, release):
                return {"bug": Case(dump(nb), f"{name}.ipynb", expect_zero_cells=must_fail)}
    return {}


def write_class(folder: pathlib.Path, cases: dict[str, Case]) -> tuple[pathlib.Path, pathlib.Path]:
    """Downloads (one sub-folder per student) and a roster for ``cases``; returns (downloads, roster)."""
    downloads = folder / "downloads"
    for student, case in cases.items():
        path = downloads / student / case.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.content)
    roster = folder / "roster.csv"
    roster.write_text("student_id\n" + "".join(f"{s}\n" for s in cases))
    return downloads, roster
