"""Checks used by the notebooks' test cells: the student's teacher.

Each check raises ``AssertionError`` with a message a student can act on: what was expected, what
came out, the relation seen between the two (transposed, tokens permuted, shifted by one position,
scaled, normalised over the wrong axis, equal to the input, equal only in eval mode, ...) and the
check's hint. Passing checks print nothing.

A chapter's visible checks are grouped per exercise in a function and run through ``run``, which
names the exercise in every failure, turns an error raised by the student's code into a named cause
(a gradient lost through ``math.exp`` or ``.item()``, a reshape with fixed sizes, a tensor made on the
wrong device, a missing ``return``, ...) and first re-runs the checks of the exercises it builds on::

    def check_attention():
        out, weights = attention(q, k, v)
        check_close(out, expected, name="attention output", hint="scale the scores by 1/sqrt(d)")

    run(check_attention, "Exercise 1 (attention)")
    ...
    run(check_mhsa, "Exercise 2 (Attention)", after=[check_attention])
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterable, Sequence

import torch

__all__ = [
    "check_shape", "check_close", "check_module", "check_equal", "check_true", "check_raises",
    "check_no_grad", "check_grad_flows", "check_sums_to_one", "check_on_meta", "check_dtype",
    "exercise", "run", "likely_cause",
]


def _fail(message: str, hint: str | None = None) -> None:
    raise AssertionError(message + (f"\nHint: {hint}" if hint else ""))


def _shape(x) -> tuple[int, ...]:
    return tuple(x.shape) if hasattr(x, "shape") else tuple(x)


# Shapes ----------------------------------------------------------------------------------------------

def check_shape(actual, expected: Sequence[int], name: str = "output", hint: str | None = None) -> None:
    """Check a tensor's (or a shape's) dimensions."""
    if actual is None:
        _fail(f"{name}: got None instead of a tensor of shape {tuple(expected)}: is a `return` missing?", hint)
    got, want = _shape(actual), tuple(expected)
    if got == want:
        return
    message = f"{name}: expected shape {want}, got {got}."
    if len(got) == len(want) and sorted(got) == sorted(want):
        message += " The dimensions are in the wrong order: did you forget a transpose or permute?"
    elif math.prod(got) == math.prod(want):
        message += " Same number of elements: a reshape or view uses the wrong sizes."
    elif len(got) != len(want):
        message += f" It has {len(got)} dimensions instead of {len(want)}."
    elif got[0] != want[0]:
        message += " The batch dimension changed: operations must keep dim 0."
    else:
        off = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
        if len(off) == 1 and abs(got[off[0]] - want[off[0]]) <= 4:
            message += (f" Dim {off[0]} has {got[off[0]]} instead of {want[off[0]]}: a token (class, distillation, "
                        "register) or a row too many or too few?")
    _fail(message, hint)


def check_dtype(actual: torch.Tensor, expected: torch.dtype, name: str = "output", hint: str | None = None) -> None:
    """The tensor's dtype, with the usual cause of a change named."""
    if actual.dtype == expected:
        return
    cause = ""
    if expected == torch.float64 and actual.dtype == torch.float32:
        cause = (" A tensor made with torch.tensor/zeros/ones without dtype= is float32, and .float() casts to it: "
                 "create new tensors with the input's dtype (dtype=x.dtype, new_zeros, zeros_like).")
    _fail(f"{name}: expected dtype {expected}, got {actual.dtype}.{cause}", hint)


# Values ----------------------------------------------------------------------------------------------

def check_close(actual, expected, name: str = "output", atol: float = 1e-5, rtol: float = 1e-4,
                hint: str | None = None, inputs: dict | None = None, mistakes: dict | None = None) -> None:
    """Check values, after type and shape, and name the relation seen between a wrong result and the
    expected one. ``inputs`` ({"the tokens x": x}) lets the check notice a result equal to an input;
    ``mistakes`` ({"the scores not scaled by 1/sqrt(d)": tensor}) names known mistakes by what they give."""
    if actual is None:
        _fail(f"{name}: got None instead of a tensor: is a `return` missing?", hint)
    if not isinstance(actual, torch.Tensor):
        _fail(f"{name}: expected a torch.Tensor, got {type(actual).__name__}.", hint)
    expected = torch.as_tensor(expected)
    check_shape(actual, expected.shape, name, hint)
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.isfinite(a).all() and torch.isfinite(e).all():
        _fail(f"{name}: contains NaN or inf.", hint)
    if _close(a, e, atol, rtol):
        return
    diff = (a - e).abs().nan_to_num(posinf=math.inf)
    if a.numel() == 1:
        message = f"{name}: got {a.item():.6g}, expected {e.item():.6g}."
    else:
        where = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        message = (f"{name}: values differ (max abs difference {diff.max():.3g} at index {where}: "
                   f"got {a[where]:.6g}, expected {e[where]:.6g}).")
    relation = relation_to(a, e, atol, rtol, inputs, mistakes)
    _fail(message + (" " + relation if relation else ""), hint)


def _close(a: torch.Tensor, e: torch.Tensor, atol: float, rtol: float) -> bool:
    return a.shape == e.shape and torch.allclose(a, e, atol=atol, rtol=rtol, equal_nan=True)


def relation_to(a: torch.Tensor, e: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4,
                inputs: dict | None = None, mistakes: dict | None = None) -> str:
    """A sentence naming how ``a`` relates to the expected ``e`` (same shape), or "" when no simple
    relation is seen. Tried in order, the first match wins: a known mistake, an input, then relations."""
    a, e = a.double(), e.double()
    close = lambda x: _close(x, e, atol, rtol)
    for label, x in (mistakes or {}).items():
        if isinstance(x, torch.Tensor) and x.shape == a.shape and _close(a, x.detach().double().cpu(), atol, rtol):
            return f"It is exactly what {label} gives."
    for label, x in (inputs or {}).items():
        if isinstance(x, torch.Tensor) and x.shape == a.shape and _close(a, x.detach().double().cpu(), atol, rtol):
            return f"It equals {label} unchanged: a step that should change it is missing or skipped."
    if close(-a):
        return "The sign is flipped."
    if a.numel() > 1:
        scale = _constant_ratio(a, e)
        if scale is not None:
            return f"Every value is {scale:.4g}x the expected one: a scale factor is missing, extra or wrong."
    for i, j in _dim_pairs(a.shape):
        if close(a.transpose(i, j)):
            return f"It equals the expected result with dims {i} and {j} swapped: a transpose or permute is wrong."
    for d in range(a.ndim):
        n = a.shape[d]
        if n < 2:
            continue
        if _close(a.narrow(d, 1, n - 1), e.narrow(d, 0, n - 1), atol, rtol) or \
                _close(a.narrow(d, 0, n - 1), e.narrow(d, 1, n - 1), atol, rtol):
            return (f"It is the expected result shifted by one position along dim {d}: an off-by-one in an index or "
                    "a slice (a class token counted, or not, where it should be?).")
        if _permuted_along(a, e, d, atol, rtol):
            return (f"It holds the expected slices along dim {d} in another order (tokens or channels permuted): "
                    "check the order of a reshape, permute, flatten or concatenation.")
    for d in range(a.ndim):
        if a.shape[d] < 2:
            continue
        rows = [k for k in range(a.shape[d]) if not _close(a.select(d, k), e.select(d, k), atol, rtol)]
        if 0 < len(rows) <= max(1, a.shape[d] // 4):
            shown = ", ".join(map(str, rows[:4])) + (", ..." if len(rows) > 4 else "")
            return (f"Only position(s) {shown} along dim {d} differ, the rest matches: look at what is special there "
                    "(a class or register token, a border, the first or last element).")
    wrong_axis = _normalised_axis(a, e)
    if wrong_axis:
        return wrong_axis
    if sorted(a.reshape(-1).tolist()) == sorted(e.reshape(-1).tolist()):
        return "Same values in a different order: check the order of a reshape, permute or transpose."
    rel = float((a - e).abs().max() / (e.abs().max() + 1e-12))
    if rel < 0.1:
        return (f"It is close but not equal (largest relative difference {rel:.2g}): a small constant differs, "
                "e.g. LayerNorm's eps, an approximate (tanh) GELU, or a float32 step.")
    return ""


def _constant_ratio(a: torch.Tensor, e: torch.Tensor) -> float | None:
    nonzero = e.abs() > 1e-8
    if nonzero.sum() < 2:
        return None
    ratio = a[nonzero] / e[nonzero]
    r = ratio.median()
    if abs(float(r) - 1) > 1e-3 and torch.allclose(ratio, r.expand_as(ratio), rtol=1e-3, atol=1e-6):
        return float(r)
    return None


def _dim_pairs(shape) -> Iterable[tuple[int, int]]:
    n = len(shape)
    return [(i, j) for i in range(n) for j in range(i + 1, n) if shape[i] == shape[j] and shape[i] > 1]


def _permuted_along(a: torch.Tensor, e: torch.Tensor, d: int, atol: float, rtol: float) -> bool:
    """Every slice of ``a`` along ``d`` equals a different slice of ``e``, and not in the same order."""
    x, y = a.movedim(d, 0).reshape(a.shape[d], -1), e.movedim(d, 0).reshape(e.shape[d], -1)
    if x.shape[1] == 0 or x.shape[0] > 4096 or x.numel() > 2**20:
        return False
    dist = torch.cdist(x, y)
    match = dist.argmin(dim=1)
    tol = atol + rtol * y.abs().max()
    found = dist.gather(1, match[:, None]).squeeze(1) <= tol * math.sqrt(x.shape[1])
    return bool(found.all()) and len(set(match.tolist())) == x.shape[0] and \
        bool((match != torch.arange(x.shape[0])).any())


def _normalised_axis(a: torch.Tensor, e: torch.Tensor) -> str:
    """Probabilities normalised along another dim than the expected ones."""
    if a.ndim < 2 or (a < -1e-6).any() or (e < -1e-6).any():
        return ""
    ones = lambda x, d: torch.allclose(x.sum(d), torch.ones(()).double(), atol=1e-4)
    want = [d for d in range(e.ndim) if ones(e, d)]
    got = [d for d in range(a.ndim) if ones(a, d)]
    if want and got and not set(want) & set(got):
        return (f"It sums to 1 along dim {got[0]} where the expected result sums to 1 along dim {want[0]}: "
                "the softmax (or normalisation) runs over the wrong axis.")
    return ""


def check_module(mine: torch.nn.Module, theirs: torch.nn.Module, *args, name: str = "output", atol: float = 1e-5,
                 rtol: float = 1e-4, hint: str | None = None, output: Callable | None = None) -> None:
    """Compare two modules on the same inputs in training mode (as training calls them); when they differ
    only in that mode, say so. ``output`` picks the tensor to compare from what the modules return."""
    pick = output or (lambda out: out)
    mine.train(), theirs.train()
    got, want = pick(mine(*args)), pick(theirs(*args))
    try:
        check_close(got, want, name=name, atol=atol, rtol=rtol, hint=hint,
                    inputs={"the input": args[0]} if args and isinstance(args[0], torch.Tensor) else None)
    except AssertionError as failure:
        mine.eval(), theirs.eval()
        with torch.no_grad():
            same_in_eval = _close(pick(mine(*args)).detach().double(), pick(theirs(*args)).detach().double(), atol, rtol)
        mine.train(), theirs.train()
        if same_in_eval:
            _fail(f"{name}: differs in training mode but matches in eval mode: your forward does something only while "
                  "training (dropout, a random step, a train-only branch). Remove it.", hint)
        raise failure from None


def check_equal(actual, expected, name: str = "value", hint: str | None = None) -> None:
    """Exact equality for ints, strings, tuples (tensors: element-wise)."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape or not torch.equal(actual, expected):
            shown = actual.tolist() if isinstance(actual, torch.Tensor) else actual
            _fail(f"{name}: expected {expected.tolist()}, got {shown}.", hint)
        return
    if actual != expected:
        message = f"{name}: expected {expected!r}, got {actual!r}."
        if actual is None:
            message += " Is a `return` missing?"
        elif isinstance(actual, (int, float)) and isinstance(expected, (int, float)) and expected and actual:
            message += f" (ratio {actual / expected:.4g})"
        _fail(message, hint)


def check_true(condition, message: str, hint: str | None = None) -> None:
    if not condition:
        _fail(message, hint)


def check_raises(fn: Callable[[], object], exc_types=Exception, name: str = "the call",
                 match: str | None = None, hint: str | None = None) -> BaseException:
    """``fn()`` must raise one of ``exc_types`` (with ``match`` in its message, if given)."""
    exc_types = exc_types if isinstance(exc_types, tuple) else (exc_types,)
    wanted = " or ".join(t.__name__ for t in exc_types)
    try:
        fn()
    except exc_types as exc:
        if match is not None and match not in str(exc):
            _fail(f"{name} raised {type(exc).__name__} but its message {str(exc)!r} does not mention {match!r}.", hint)
        return exc
    except Exception as exc:  # noqa: BLE001 - any other exception is the mistake to report
        _fail(f"{name} should raise {wanted}, but raised {type(exc).__name__}: {exc}", hint)
    _fail(f"{name} should raise {wanted}, but raised nothing.", hint)


# Devices ---------------------------------------------------------------------------------------------

# What the meta device cannot do while a GPU can: ops whose output shape depends on the data
# (boolean-mask indexing, nonzero, unique, masked_select) and .item(). (Copying values out of a meta
# tensor, "Cannot copy out of meta tensor", is not among them: a tensor made on the CPU that receives the
# input's values, or .cpu(), gives it too, and that is the device mistake the check is for.)
_META_LIMITS = ("data-independent", "register_meta", "fake impl or Meta kernel", "cannot be called on meta tensors",
                "with Meta tensors")


def meta_cannot_run(exc: BaseException) -> bool:
    """Whether ``exc`` says the meta device cannot run an op (not that tensors sit on different devices)."""
    return isinstance(exc, (NotImplementedError, RuntimeError)) and any(s in str(exc) for s in _META_LIMITS)


def check_on_meta(fn: Callable[[], object], name: str = "the code", hint: str | None = None,
                  shape: Sequence[int] | None = None):
    """Run ``fn()``, whose inputs (and modules) live on PyTorch's ``meta`` device, and return its result.

    The meta device stands in for a GPU: tensors there hold shapes only, and mixing one with a tensor
    created on the CPU raises. Fails when ``fn`` mixes devices or returns a tensor (also inside a tuple or
    list) that is not on the meta device; ``shape`` checks the (first) output's shape. Correct code that
    the meta device cannot run (boolean masks, ``nonzero``, ``.item()``: their result depends on values)
    passes: the check returns None then, having nothing to compare.
    """
    hint = hint or "create new tensors on the input's device (device=x.device, new_zeros, zeros_like), never on a fixed one"
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - classified below
        if meta_cannot_run(exc):
            return None
        cause = likely_cause(exc)
        _fail(f"{name} fails when its inputs live on another device (meta, which stands in for a GPU): "
              f"{type(exc).__name__}: {exc}" + (f"\nLikely cause: {cause}" if cause else ""), hint)
    outputs = out if isinstance(out, (tuple, list)) else [out]
    for i, t in enumerate(outputs):
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            which = f"output {i}" if len(outputs) > 1 else "its output"
            _fail(f"{name} on inputs on the meta device returned {which} on {t.device}", hint)
    if shape is not None:
        check_shape(outputs[0], shape, name=f"{name} on the meta device", hint=hint)
    return out


# Gradients and probabilities ---------------------------------------------------------------------------

def check_no_grad(module: torch.nn.Module, name: str = "the module") -> None:
    """No parameter of ``module`` requires or has received a gradient."""
    for pname, p in module.named_parameters():
        if p.requires_grad or (p.grad is not None and p.grad.abs().sum() > 0):
            _fail(f"{name}: parameter {pname!r} requires or received a gradient; it must stay frozen.")


def check_grad_flows(obj, name: str = "tensor", hint: str | None = None) -> None:
    """A tensor (or every parameter of a module) has a nonzero, finite gradient."""
    items = obj.named_parameters() if isinstance(obj, torch.nn.Module) else [(name, obj)]
    for pname, p in items:
        if p.grad is None:
            _fail(f"{pname}: no gradient reached it. Is it used in the forward pass, and not detached "
                  "(.item(), float(), math functions or torch.tensor(...) of a tensor cut the graph)?", hint)
        if not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0:
            _fail(f"{pname}: its gradient is zero or not finite.", hint)


def check_sums_to_one(t: torch.Tensor, dim: int = -1, name: str = "probabilities", atol: float = 1e-5,
                      hint: str | None = None) -> None:
    """Values are non-negative and sum to 1 along ``dim`` (e.g. attention rows)."""
    sums = t.detach().sum(dim=dim)
    if (t < -atol).any():
        _fail(f"{name}: has negative entries; softmax output cannot be negative.", hint)
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol):
        other = ""
        for d in range(t.ndim):
            if d != dim % t.ndim and torch.allclose(t.detach().sum(dim=d), torch.ones(1, dtype=t.dtype), atol=atol):
                other = f" They sum to 1 along dim {d} instead: softmax over the wrong axis?"
                break
        _fail(f"{name}: should sum to 1 along dim {dim}, sums range from {sums.min():.4g} to {sums.max():.4g}.{other}",
              hint)


# Exercises: named failures, causes of errors, dependencies ------------------------------------------------

# (substring of an error message, the likely cause in the student's code)
_CAUSES = (
    ("does not require grad and does not have a grad_fn",
     "the result is cut off from the computation graph: a value went through .item(), float(), math.exp/math.log, "
     "numpy, .detach() or torch.tensor(...) of a tensor. Keep it a tensor and use torch operations (torch.exp, ...)."),
    ("is not on the expected device", "a tensor was created on a fixed device (the CPU) and mixed with inputs on "
     "another one: create it with device=x.device (or new_zeros, zeros_like, torch.arange(..., device=x.device))."),
    ("Cannot copy out of meta tensor", "values were copied off the input's device: a tensor created on the CPU "
     "that receives the input's values, or .cpu(), .numpy(), .tolist() of a tensor. Create new tensors with "
     "device=x.device and keep the values on it."),
    ("Expected all tensors to be on the same device", "a tensor was created on a fixed device and mixed with inputs "
     "on another one: create it with device=x.device."),
    ("is invalid for input of size", "a reshape or view uses sizes that do not fit this input: compute the sizes "
     "from the input's own shape (x.shape) rather than fixed numbers."),
    ("shapes cannot be multiplied", "a matrix product or Linear layer gets the wrong width: check which dimension "
     "a Linear acts on, and the sizes passed to the layers."),
    ("must match the size of tensor", "two tensors that are combined have different sizes: check a concatenation, "
     "a broadcast or an index."),
    ("Sizes of tensors must match", "tensors concatenated (torch.cat) differ in a dimension other than the one "
     "joined: check the order of their dimensions and the expand of a token."),
    ("NoneType", "a function or method returned None: is a `return` missing?"),
    ("expected scalar type", "two tensors of different dtypes meet: create new tensors with dtype=x.dtype."),
    ("found dtype", "two tensors of different dtypes meet: create new tensors with dtype=x.dtype."),
    ("view size is not compatible with input tensor's size and stride", "view() after a transpose or permute: use "
     ".reshape(...) (or .contiguous().view(...))."),
    ("object has no attribute", "an attribute the exercise asks for is missing or named differently: use the names "
     "the exercise gives."),
    ("Missing key(s) in state_dict", "your module's parameters are named differently from the reference's: use the "
     "attribute names the exercise gives (and no extra parameters)."),
    ("Unexpected key(s) in state_dict", "your module has parameters the reference does not: use exactly the "
     "attributes the exercise gives."),
    ("size mismatch for", "a parameter has another shape than the reference's: check the sizes the exercise gives."),
    ("required positional argument", "a required argument is missing: check the signature the exercise gives."),
    ("unexpected keyword argument", "the signature differs from the one the exercise gives."),
    ("out of range", "an index runs past the end of a dimension: check the sizes and the order of the dimensions."),
    ("out of bounds", "an index runs past the end of a dimension: check the sizes and the order of the dimensions."),
)


def likely_cause(exc: BaseException) -> str:
    """The most likely cause in a student's code of an error it raised (or "")."""
    if isinstance(exc, NotImplementedError) and not str(exc):
        return "this exercise is not done yet: replace `raise NotImplementedError()` with your code."
    text = f"{type(exc).__name__}: {exc}"
    for needle, cause in _CAUSES:
        if needle in text:
            return cause
    return ""


@contextlib.contextmanager
def exercise(label: str, hint: str | None = None):
    """Name ``label`` in any failure inside the block; turn an error raised by the student's code into an
    ``AssertionError`` that gives the error, its likely cause and ``hint`` (the exercise's usual pitfall)."""
    try:
        yield
    except AssertionError as failure:
        text = str(failure)
        raise AssertionError(text if text.startswith(label) else f"{label}: {text}") from None
    except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        cause = likely_cause(exc) or ("" if hint else "the error comes from your code, called with the inputs of the "
                                      "check: read its last line.")
        raise AssertionError(f"{label}: your code raised {type(exc).__name__}{': ' + first if first else ''}"
                             + (f"\nLikely cause: {cause}" if cause else "")
                             + (f"\nHint: {hint}" if hint else "")) from None


def run(check: Callable[[], object], label: str, after: Sequence[Callable[[], object]] = (),
        hint: str | None = None, quiet: bool = False) -> None:
    """Run one exercise's visible checks: first the checks of the exercises it builds on (``after``, functions
    run before through ``run``), then ``check`` itself; print one line when everything passed. ``hint`` is
    added to an error raised by the student's code (not to a failed check, which carries its own)."""
    check.label = label
    for earlier in after:
        name = getattr(earlier, "label", earlier.__name__)
        try:
            with contextlib.redirect_stdout(io.StringIO()), exercise(name):
                earlier()
        except AssertionError as failure:
            raise AssertionError(f"{label} builds on {name}, which does not pass its check yet: fix it first.\n"
                                 f"{failure}") from None
    with exercise(label, hint):
        check()
    if not quiet:
        print(f"{label}: visible checks passed")
