"""Checks used by the notebooks' test cells.

Each raises ``AssertionError`` with a message a student can act on: what was expected, what came
out, and the most likely cause. Passing checks print nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

__all__ = [
    "check_shape", "check_close", "check_equal", "check_true", "check_raises",
    "check_no_grad", "check_grad_flows", "check_sums_to_one", "check_on_meta",
]


def _fail(message: str, hint: str | None = None) -> None:
    raise AssertionError(message + (f"\nHint: {hint}" if hint else ""))


def _shape(x) -> tuple[int, ...]:
    return tuple(x.shape) if hasattr(x, "shape") else tuple(x)


def check_shape(actual, expected: Sequence[int], name: str = "output", hint: str | None = None) -> None:
    """Check a tensor's (or a shape's) dimensions."""
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
    _fail(message, hint)


def check_close(actual, expected, name: str = "output", atol: float = 1e-5, rtol: float = 1e-4,
                hint: str | None = None) -> None:
    """Check values, after type and shape, and guess at the cause of a mismatch."""
    if not isinstance(actual, torch.Tensor):
        _fail(f"{name}: expected a torch.Tensor, got {type(actual).__name__}.", hint)
    expected = torch.as_tensor(expected)
    check_shape(actual, expected.shape, name, hint)
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.isfinite(a).all():
        _fail(f"{name}: contains NaN or inf.", hint)
    if torch.allclose(a, e, atol=atol, rtol=rtol):
        return
    diff = (a - e).abs()
    where = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
    message = (f"{name}: values differ (max abs difference {diff.max():.3g} at index {where}: "
               f"got {a[where]:.6g}, expected {e[where]:.6g}).")
    message += _guess(a, e, atol, rtol)
    _fail(message, hint)


def _guess(a: torch.Tensor, e: torch.Tensor, atol: float, rtol: float) -> str:
    close = lambda x: torch.allclose(x, e, atol=atol, rtol=rtol)  # noqa: E731
    if close(-a):
        return " The sign is flipped."
    nonzero = e.abs() > 1e-8
    if nonzero.any():
        ratio = a[nonzero] / e[nonzero]
        r = ratio.median()
        if abs(float(r) - 1) > 1e-3 and torch.allclose(ratio, r.expand_as(ratio), rtol=1e-3, atol=1e-6):
            return f" Every value is {float(r):.4g}x the expected one: a missing or extra scale factor?"
    if sorted(a.reshape(-1).tolist()) == sorted(e.reshape(-1).tolist()):
        return " Same values in a different order: check the order of a reshape, permute or transpose."
    if a.ndim >= 2 and a.shape[-1] == a.shape[-2] and close(a.transpose(-1, -2)):
        return " It equals the expected result transposed in the last two dimensions."
    return ""


def check_equal(actual, expected, name: str = "value", hint: str | None = None) -> None:
    """Exact equality for ints, strings, tuples (tensors: element-wise)."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape or not torch.equal(actual, expected):
            _fail(f"{name}: expected {expected.tolist()}, got {actual if not isinstance(actual, torch.Tensor) else actual.tolist()}.", hint)
        return
    if actual != expected:
        message = f"{name}: expected {expected!r}, got {actual!r}."
        if isinstance(actual, (int, float)) and isinstance(expected, (int, float)) and expected and actual:
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
    except Exception as exc:  # noqa: BLE001
        _fail(f"{name} should raise {wanted}, but raised {type(exc).__name__}: {exc}", hint)
    _fail(f"{name} should raise {wanted}, but raised nothing.", hint)


def check_on_meta(fn: Callable[[], object], name: str = "the code", hint: str | None = None):
    """Run ``fn()``, whose inputs (and modules) live on PyTorch's ``meta`` device, and return its result.

    The meta device stands in for a GPU: tensors there hold shapes only, and mixing one with a tensor
    created on the CPU raises. Fails when ``fn`` raises or returns a tensor (also inside a tuple or list)
    that is not on the meta device.
    """
    hint = hint or "create new tensors on the input's device (device=x.device, new_zeros, zeros_like), never on a fixed one"
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - any failure here is the device mistake to report
        _fail(f"{name} fails when its inputs live on another device (meta, which stands in for a GPU): "
              f"{type(exc).__name__}: {exc}", hint)
    outputs = out if isinstance(out, (tuple, list)) else [out]
    for i, t in enumerate(outputs):
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            which = f"output {i}" if len(outputs) > 1 else "its output"
            _fail(f"{name} on inputs on the meta device returned {which} on {t.device}", hint)
    return out


def check_no_grad(module: torch.nn.Module, name: str = "the module") -> None:
    """No parameter of ``module`` requires or has received a gradient."""
    for pname, p in module.named_parameters():
        if p.requires_grad or (p.grad is not None and p.grad.abs().sum() > 0):
            _fail(f"{name}: parameter {pname!r} requires or received a gradient; it must stay frozen.")


def check_grad_flows(obj, name: str = "tensor") -> None:
    """A tensor (or every parameter of a module) has a nonzero, finite gradient."""
    items = obj.named_parameters() if isinstance(obj, torch.nn.Module) else [(name, obj)]
    for pname, p in items:
        if p.grad is None:
            _fail(f"{pname}: no gradient reached it. Is it used in the forward pass, and not detached?")
        if not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0:
            _fail(f"{pname}: its gradient is zero or not finite.")


def check_sums_to_one(t: torch.Tensor, dim: int = -1, name: str = "probabilities", atol: float = 1e-5) -> None:
    """Values are non-negative and sum to 1 along ``dim`` (e.g. attention rows)."""
    sums = t.detach().sum(dim=dim)
    if (t < -atol).any():
        _fail(f"{name}: has negative entries; softmax output cannot be negative.")
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol):
        other = [d for d in range(t.ndim) if d != dim % t.ndim]
        hint = ""
        for d in other:
            if torch.allclose(t.detach().sum(dim=d), torch.ones(1, dtype=t.dtype), atol=atol):
                hint = f" They sum to 1 along dim {d} instead: softmax over the wrong axis?"
                break
        _fail(f"{name}: should sum to 1 along dim {dim}, sums range from {sums.min():.4g} to {sums.max():.4g}.{hint}")


