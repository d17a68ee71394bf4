"""Demonstration cells (tag ``demo``: training demos, figures, full-budget runs) are not run by the
grader (``autograder.cells.without_demos``). No graded cell may need one: statically, no later cell
that does run reads a name whose last definition was in a demonstration; and run with the
demonstrations skipped (``NotebookRun(skip_tags={"demo"})``, the grader's view), every graded cell
gives the result it gives in the full run, which the chapter tests check: it passes, visible checks
included, and no other cell fails.
"""

from __future__ import annotations

import ast
import pathlib
import symtable

import pytest

from autograder import cells, exercises
from autograder.workspace import course_assignments, source_notebook

from nbexec import NotebookRun

REPO = pathlib.Path(__file__).resolve().parents[2]
CHAPTERS = course_assignments(REPO)


def _names_in_order(tree: ast.AST, ctx: type) -> dict[str, int]:
    """{name: first line} of module-level uses (``ast.Load``) or bindings (``ast.Store``, imports,
    definitions) in ``tree``, not descending into functions, classes, lambdas or comprehensions."""
    found: dict[str, int] = {}

    def note(name: str, line: int) -> None:
        found[name] = min(line, found.get(name, line))

    def visit(node: ast.AST) -> None:
        if ctx is ast.Store and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            note(node.name, node.lineno)
        if ctx is ast.Store and isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                note(a.asname or a.name.split(".")[0], node.lineno)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ctx):
            note(node.id, node.lineno)
        scoped = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp,
                  ast.DictComp, ast.GeneratorExp)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, scoped):
                for part in [*getattr(child, "decorator_list", []), *getattr(child, "bases", [])]:
                    visit(part)  # evaluated in the cell's own scope
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and ctx is ast.Store:
                    note(child.name, child.lineno)
                continue
            visit(child)

    visit(tree)
    return found


def reads_and_binds(code: str) -> tuple[set[str], set[str]]:
    """(names the cell reads from the notebook's namespace, names it binds there)."""
    tree = exercises.parse(code)
    if tree is None:
        return set(), set()
    text = ast.unparse(tree)
    loads, stores = _names_in_order(tree, ast.Load), _names_in_order(tree, ast.Store)
    reads = {n for n, line in loads.items() if n not in stores or line <= stores[n]}

    def globals_of(table: symtable.SymbolTable) -> None:  # names functions, classes and comprehensions read
        for child in table.get_children():
            reads.update(s.get_name() for s in child.get_symbols()
                         if s.is_referenced() and s.is_global() and s.get_name() not in stores)
            globals_of(child)

    globals_of(symtable.symtable(text, "<cell>", "exec"))
    return reads, set(stores)


def demo_dependencies(nb: dict) -> list[str]:
    """Every cell that runs under the grader and reads a name last defined in a demonstration."""
    from_demo: dict[str, int] = {}  # name -> index of the demonstration cell that defined it last
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        reads, binds = reads_and_binds(cells.source(cell))
        if cells.is_demo(cell):
            from_demo.update(dict.fromkeys(binds, i))
            continue
        for name in sorted(reads & set(from_demo)):
            who = cells.grade_id(cell) or f"cell {i}"
            problems.append(f"{who} reads {name!r}, defined by the demonstration cell {from_demo[name]}")
        for name in binds:
            from_demo.pop(name, None)
    return problems


def test_the_dependency_check_sees_what_a_demo_defines():
    code = lambda text, *tags: {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": text}
    nb = {"cells": [code("model = train()", "demo"), code("model.eval()\nacc = 1", "demo"),
                    code("def f():\n    return acc\n"), code("x = model\nmodel = 2\ny = model"),
                    code("print([v for v in model])\nimport acc")]}
    assert demo_dependencies(nb) == ["cell 2 reads 'acc', defined by the demonstration cell 1",
                                     "cell 3 reads 'model', defined by the demonstration cell 0"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_graded_cell_needs_a_demonstration(chapter):
    nb = source_notebook(REPO, chapter)
    demos = [c for c in nb["cells"] if cells.is_demo(c)]
    assert demos, f"{chapter} tags no demonstration cell: tag the cells no graded cell needs (# %% tags=[\"demo\"])"
    assert not [c for c in nb["cells"] if "demo" in cells.tags(c) and not cells.is_demo(c)], \
        "an answer or graded cell is tagged demo: the grader must run it"
    assert demo_dependencies(nb) == []


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_graded_cells_pass_with_demonstrations_skipped(chapter):
    run = NotebookRun(f"solutions/{chapter}/{chapter}.ipynb", skip_tags=frozenset({cells.DEMO_TAG}))
    assert run.errors == []
    assert run.failures() == {} and {k for k, v in run.visible_results.items() if v} == set()
    assert set(run.results) == set(cells.tests(source_notebook(REPO, chapter)))
