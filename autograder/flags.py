"""Flag, don't trust: student code that lets the reference do the exercise, or tampers with the checks.

Everything is found by reading the code (``ast``), never by running it. A flag is for a person to
judge; it never changes a score. Patterns, in the student's answer cells and the cells they added:

- **the reference used for an exercise**: any access to an object of ``vitcourse.models`` (where the
  reference of everything students write lives) whose name is one of the notebook's exercises,
  however it is reached: ``from vitcourse.models.patches import
  patchify``, ``import vitcourse.models.patches as P; P.patchify``, ``getattr(P, "patchify")``,
  ``importlib.import_module(...)``, ``vars(P)["patchify"]``, a reference method such as
  ``ref.MAE.forward_encoder(self, ...)`` or ``ref.SwinBlock.forward``;
- **super() into a reference class**: an answer class that inherits from a ``vitcourse.models``
  class and calls ``super().M`` for an exercise method ``M``, or leaves ``M`` out (inheriting it);
- **a handed-in reference object called whole**: the tests pass a reference module into an exercise
  function (``swin_block_forward(block, x)`` with ``block = ref.SwinBlock(...)``), and the answer
  calls ``block(x)``, ``block.forward(x)`` or ``type(block).forward(block, x)`` instead of using its
  parts (``block.attn``, ``block.norm1``);
- **monkeypatching**: an assignment to an attribute of ``torch``, ``vitcourse``, ``builtins`` or the
  check helpers (``torch.allclose = lambda *a, **k: True``, ``setattr(checks, "check_close", ...)``).

Using ``torch``, ``nn.Linear``, ``torch.nn.functional``, the objects a notebook hands in under other
names, and the notebook's own earlier exercises is what students are meant to do and is not flagged.
"""

from __future__ import annotations

import ast

from autograder import cells
from autograder.exercises import (
    CALLS,
    PROTECTED_ROOTS,
    Exercises,
    Names,
    called,
    exercise_in,
    exercises,
    holds_objects,
    is_reference,
    parse,
)


def flag_notebook(student: dict, release: dict) -> list[str]:
    """Flags for a (repaired) student notebook: its answer cells and the code cells it added."""
    release_sources = {cells.source(c).strip() for c in release["cells"]}
    answer_ids = set(cells.answers(release))
    student_cells, context, added = [], [], 0
    for c in student["cells"]:
        if c.get("cell_type") != "code":
            continue
        gid, text = cells.grade_id(c), cells.source(c)
        if gid in answer_ids:
            student_cells.append((gid, text))
        elif not cells.nbgrader(c) and text.strip() not in release_sources:
            added += 1
            student_cells.append((f"added cell {added}", text))
        else:
            context.append(text)
    return scan(student_cells, context, exercises(release))


def scan(student_cells: list[tuple[str, str]], context: list[str] = (), ex: Exercises | None = None) -> list[str]:
    """Flags for ``(label, source)`` student cells; ``context`` (the notebook's other cells) is read
    for imports only; ``ex``: the release's exercises (default: the names the cells define)."""
    parsed = [(label, parse(text)) for label, text in student_cells]
    trees = [t for t in map(parse, context) if t is not None] + [t for _, t in parsed if t is not None]
    names = Names(trees)
    if ex is None:
        ex = Exercises(names={n.name for _, t in parsed if t for n in t.body
                              if isinstance(n, (ast.FunctionDef, ast.ClassDef))})
    flags: list[str] = []
    for label, tree in parsed:
        if tree is not None:
            flags += [f"{label}: {text}" for text in _cell_flags(tree, names, ex)]
    return sorted(set(flags))


def _cell_flags(tree: ast.AST, names: Names, ex: Exercises) -> list[str]:
    out = []
    for node in ast.walk(tree):
        out += _monkeypatch(node, names)
        if isinstance(node, ast.ImportFrom) and holds_objects(node.module or ""):
            for a in node.names:
                if a.name == "*":
                    out.append(f"imports everything from {node.module} (the reference)")
                elif exercise_in(f"{node.module}.{a.name}", ex):
                    out.append(f"imports {a.name} from {node.module} (the reference)")
        if isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
            path = names.resolve(node)
            hit = exercise_in(path, ex) if is_reference(path) else None
            if hit:
                out.append(f"uses {path} (the reference) for {hit}")
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in ex.names for t in node.targets):
            path = names.resolve(node.value)
            if is_reference(path):
                out.append(f"binds {ast.unparse(node.targets[0])} to {path} (the reference)")
        if isinstance(node, ast.ClassDef):
            out += _super_into_reference(node, names, ex)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in ex.handed:
            out += _calls_handed_in(node, ex.handed[node.name], names)
    return out


def _monkeypatch(node: ast.AST, names: Names) -> list[str]:
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    elif isinstance(node, ast.Delete):
        targets = node.targets
    out = []
    for t in targets:
        for sub in ast.walk(t):
            if isinstance(sub, (ast.Attribute, ast.Subscript)):
                root = sub
                while isinstance(root, (ast.Attribute, ast.Subscript)):
                    root = root.value
                path = names.resolve(root) if isinstance(root, ast.Name) else None
                if path and path.split(".")[0] in PROTECTED_ROOTS:
                    out.append(f"monkeypatch: assigns to {ast.unparse(sub)} ({path})")
                    break
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"setattr", "delattr"}:
        path = names.resolve(node.args[0]) if node.args else None
        if path and path.split(".")[0] in PROTECTED_ROOTS:
            out.append(f"monkeypatch: {ast.unparse(node)[:80]}")
    return out


def _super_into_reference(cls: ast.ClassDef, names: Names, ex: Exercises) -> list[str]:
    bases = [p for p in map(names.resolve, cls.bases) if is_reference(p)]
    if not bases:
        return []
    methods = ex.methods.get(cls.name, ex.all_methods)
    out = []
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and node.attr in methods and isinstance(node.value, ast.Call) \
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "super":
            out.append(f"{cls.name} calls super().{node.attr}, the reference's own ({bases[0]})")
    defined = {m.name for m in cls.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for missing in sorted(ex.methods.get(cls.name, set()) - defined):
        out.append(f"{cls.name} does not define {missing}: it inherits the reference's ({bases[0]})")
    return out


def _calls_handed_in(fn: ast.FunctionDef, slots: set, names: Names) -> list[str]:
    params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    held = {params[i] for i in slots if isinstance(i, int) and i < len(params)}
    held |= {k for k in slots if isinstance(k, str) and k in params + [a.arg for a in fn.args.kwonlyargs]}
    held |= {a.arg for a in fn.args.args + fn.args.kwonlyargs if a.annotation is not None
             and is_reference(names.resolve(a.annotation))}
    for node in ast.walk(fn):  # local aliases: b = block
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in held:
            held |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    out = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in held:
            out.append(f"{fn.name} calls the reference object it is handed ({node.func.id}) instead of its parts")
        elif isinstance(node, ast.Attribute) and node.attr in CALLS and isinstance(node.value, ast.Name) \
                and node.value.id in held:
            out.append(f"{fn.name} runs {node.value.id}.{node.attr}, the reference object it is handed")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name) \
                and node.args[0].id in held and (called(node) in CALLS or called(node) == "functional_call"):
            out.append(f"{fn.name} runs the reference object it is handed ({ast.unparse(node.func)})")
    return out
