"""What a release notebook asks students to write, read from its code (``ast``), and the names
a notebook's imports and aliases stand for. ``autograder.flags`` compares student code with this.

    >>> ex = exercises(release)
    >>> ex.names     # {"random_masking", "MyMAE", ...}: functions and classes of the answer cells
    >>> ex.methods   # {"MyMAE": {"forward_encoder", "forward_decoder"}}: methods left to the student
    >>> ex.handed    # {"swin_block_forward": {0}}: the tests pass a reference object as argument 0
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from autograder import cells

PROTECTED_ROOTS = {"torch", "vitcourse", "builtins", "checks", "__builtins__"}
# Where the course's reference implementations live, and how many dotted parts name the module that
# holds them (vitcourse.models.patches.patchify). One rule places them: vitcourse.models holds the models
# and the reference of every function students write (CONTRIBUTING.md, "Where code goes").
REFERENCE_MODULES = {"vitcourse.models": 3}
CALLS = {"forward", "__call__", "_call_impl", "_wrapped_call_impl"}  # what runs a module whole
MODE_METHODS = {"eval", "train", "to", "float", "double", "half", "cpu", "cuda", "requires_grad_"}
STUB = re.compile(r"### BEGIN SOLUTION|YOUR CODE HERE|raise NotImplementedError")


def _norm(name: str) -> str:
    return name.replace("_", "").lower()


@dataclass
class Exercises:
    """What a release notebook asks students to write."""

    names: set[str] = field(default_factory=set)  # functions and classes its answer cells define
    methods: dict[str, set[str]] = field(default_factory=dict)  # answer class -> methods to write
    handed: dict[str, set] = field(default_factory=dict)  # function -> parameters given a reference object

    @property
    def all_methods(self) -> set[str]:
        return set().union(*self.methods.values()) if self.methods else set()


def parse(source: str) -> ast.AST | None:
    # IPython magics (%pip, !ls) are not Python; blank them so the rest of the cell still parses
    text = re.sub(r"^(\s*)[%!].*$", r"\1pass", source, flags=re.M)
    try:
        return ast.parse(text)
    except SyntaxError:
        return None


class Names:
    """Local names that stand for modules or objects: ``{name: dotted path}``, from every import
    and plain alias assignment in the notebook."""

    def __init__(self, trees: list[ast.AST]):
        self.paths: dict[str, str] = {root: root for root in PROTECTED_ROOTS}
        for _ in range(2):  # twice, so that an alias of an alias resolves
            for tree in trees:
                for node in ast.walk(tree):
                    self._learn(node)

    def _learn(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                self.paths[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    self.paths[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            path = self.resolve(node.value)
            if path:
                self.paths[node.targets[0].id] = path

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted path an expression reads (``P.patchify`` -> ``vitcourse.models.patches.patchify``)."""
        if isinstance(node, ast.Name):
            return self.paths.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Subscript):  # vars(m)["f"], m.__dict__["f"], sys.modules["m"]
            key = node.slice.value if isinstance(node.slice, ast.Constant) else None
            if not isinstance(key, str):
                return None
            value = node.value
            if isinstance(value, ast.Attribute) and value.attr == "__dict__":
                base = self.resolve(value.value)
            elif isinstance(value, ast.Call) and called(value) == "vars" and value.args:
                base = self.resolve(value.args[0])
            else:
                return key if self.resolve(value) == "sys.modules" else None
            return f"{base}.{key}" if base else None
        if isinstance(node, ast.Call):
            name, args = called(node), node.args
            if name == "getattr" and len(args) >= 2:
                base = self.resolve(args[0])
                key = args[1].value if isinstance(args[1], ast.Constant) else "<computed name>"
                return f"{base}.{key}" if base else None
            if name in ("import_module", "__import__") and args and isinstance(args[0], ast.Constant):
                module = str(args[0].value)
                fromlist = name == "import_module" or len(args) > 3 or any(k.arg == "fromlist" for k in node.keywords)
                return module if fromlist else module.split(".")[0]
        return None


def called(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _reference_depth(path: str | None) -> int | None:
    for root, depth in REFERENCE_MODULES.items():
        if path and (path == root or path.startswith(root + ".")):
            return depth
    return None


def is_reference(path: str | None) -> bool:
    return _reference_depth(path) is not None


def holds_objects(module: str) -> bool:
    """Whether ``from module import name`` imports reference objects (not a module of them)."""
    depth = _reference_depth(module)
    return depth is not None and len(module.split(".")) >= depth


def exercise_in(path: str, ex: Exercises) -> str | None:
    """The exercise a reference path stands for, if any."""
    depth = _reference_depth(path) or 3
    parts = path.split(".")[depth:]  # after the module that holds the objects
    if parts and _norm(parts[0]) in {_norm(n) for n in ex.names}:
        return parts[0]
    for attr in parts[1:]:
        if attr in ex.all_methods or attr in CALLS or attr == "<computed name>":
            return attr
    if len(path.split(".")) == depth + 1 and parts and parts[0] == "<computed name>":
        return "a name computed at run time"
    return None


def exercises(release: dict) -> Exercises:
    """Read the exercises of a release (or source) notebook."""
    ex = Exercises()
    answer_trees, other_trees = [], []
    for c in release["cells"]:
        if c.get("cell_type") != "code":
            continue
        text = cells.source(c)
        tree = parse(text)
        if tree is None:
            continue
        if cells.kind(c) == "solution":
            answer_trees.append(tree)
            lines = text.splitlines()
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    ex.names.add(node.name)
                if isinstance(node, ast.ClassDef):
                    ex.methods[node.name] = {
                        m.name for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and STUB.search("\n".join(lines[m.lineno - 1:m.end_lineno]))}
        else:
            other_trees.append(tree)
    names = Names(answer_trees + other_trees)
    functions = {n for n in ex.names if n not in ex.methods}
    ex.handed = _handed_in(other_trees, names, functions)
    return ex


def _handed_in(trees: list[ast.AST], names: Names, functions: set[str]) -> dict[str, set]:
    """{exercise function: positions and keywords at which the tests pass a reference object}."""
    objects: set[str] = set()  # names bound to reference objects
    groups: set[str] = set()  # names bound to lists of them

    def is_object(node) -> bool:
        if isinstance(node, ast.Name):
            return node.id in objects
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in MODE_METHODS:
                return is_object(f.value)  # ref.SwinBlock(...).eval()
            return is_reference(names.resolve(f))
        return False

    def is_group(node) -> bool:
        if isinstance(node, (ast.List, ast.Tuple)):
            return bool(node.elts) and all(is_object(e) for e in node.elts)
        if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            return is_object(node.elt)
        return isinstance(node, ast.Name) and node.id in groups

    def bind(target, value) -> None:
        if isinstance(target, ast.Name):
            if is_object(value):
                objects.add(target.id)
            elif is_group(value):
                groups.add(target.id)
        elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts):
                bind(t, v)

    for _ in range(2):
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign):
                    for t in node.targets:
                        bind(t, node.value)
                elif isinstance(node, ast.For) and isinstance(node.target, ast.Name) and is_group(node.iter):
                    objects.add(node.target.id)
    out: dict[str, set] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions:
                hits = {i for i, a in enumerate(node.args) if is_object(a)}
                hits |= {k.arg for k in node.keywords if k.arg and is_object(k.value)}
                if hits:
                    out.setdefault(node.func.id, set()).update(hits)
    return out
