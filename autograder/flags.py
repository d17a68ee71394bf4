"""Flag, don't trust: student code that uses the reference or tampers with the checks.

Two patterns, found by reading the code (``ast``), never by running it:

- an answer cell imports or calls ``vitcourse.models`` for the piece it is meant to implement
  (a name the release's answer cell defines, e.g. ``from vitcourse.models.patches import patchify``);
- student code assigns to an attribute of ``torch``, ``vitcourse``, ``builtins`` or the check
  helpers (``torch.allclose = lambda *a, **k: True``, ``setattr(checks, "check_close", ...)``).
"""

from __future__ import annotations

import ast

PROTECTED_ROOTS = {"torch", "vitcourse", "builtins", "checks", "__builtins__"}


def defined_names(source: str) -> set[str]:
    """Top-level functions and classes a (release) answer cell defines."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}


def _aliases(trees: list[ast.AST]) -> dict[str, str]:
    """{local name: module path} for every import of a protected package in the notebook."""
    out = {r: r for r in PROTECTED_ROOTS}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] in PROTECTED_ROOTS:
                        out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module.split(".")[0] in PROTECTED_ROOTS:
                    for a in node.names:
                        out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def scan(cells: list[tuple[str, str, set[str]]], context_sources: list[str] = ()) -> list[str]:
    """Flags for student cells ``(label, source, names the cell must implement)``.

    ``context_sources`` (the notebook's other cells) are read only to learn import aliases."""
    trees = []
    for src in list(context_sources) + [c[1] for c in cells]:
        try:
            trees.append(ast.parse(src))
        except SyntaxError:
            pass
    aliases = _aliases(trees)
    flags = []
    for label, source, targets in cells:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            # monkeypatching: assignment to an attribute / item rooted at a protected module
            targets_of = []
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets_of = node.targets if isinstance(node, ast.Assign) else [node.target]
            elif isinstance(node, ast.Delete):
                targets_of = node.targets
            for t in targets_of:
                for sub in ast.walk(t):
                    if isinstance(sub, (ast.Attribute, ast.Subscript)):
                        root = _root(sub)
                        if root in aliases and aliases[root].split(".")[0] in PROTECTED_ROOTS:
                            flags.append(f"{label}: monkeypatch: assigns to {ast.unparse(sub)} "
                                         f"({aliases[root]})")
                            break
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"setattr", "delattr"}:
                if node.args and _root(node.args[0]) in aliases:
                    flags.append(f"{label}: monkeypatch: {ast.unparse(node)[:80]}")
            # the reference implementation used for the piece to implement
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vitcourse.models"):
                hits = [a.name for a in node.names if a.name in targets or a.name == "*"]
                if hits:
                    flags.append(f"{label}: imports {', '.join(hits)} from {node.module} (the reference)")
            if isinstance(node, ast.ImportFrom) and node.module == "vitcourse" and any(a.name == "models" for a in node.names) and targets:
                pass  # judged when an attribute is used, below
            if isinstance(node, ast.Attribute) and node.attr in targets:
                dotted = _dotted(node)
                root = dotted.split(".")[0]
                full = aliases.get(root, "") + dotted[len(root):] if root in aliases else dotted
                if "vitcourse.models" in full or full.startswith("models."):
                    flags.append(f"{label}: uses {full} (the reference) for {node.attr}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"__import__", "import_module"}:
                if node.args and isinstance(node.args[0], ast.Constant) and "vitcourse.models" in str(node.args[0].value):
                    flags.append(f"{label}: imports {node.args[0].value} dynamically")
    return sorted(set(flags))
