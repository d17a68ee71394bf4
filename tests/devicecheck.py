"""Device mistakes found without a GPU.

A model that builds a tensor on the CPU inside ``forward`` (``torch.arange(N)``, ``torch.ones(B, N)``,
a mask from a helper) works on a CPU and fails on a GPU. ``on_meta(fn, *args)`` finds it here: the
modules and tensors among the arguments go to the ``meta`` device (shapes only, no data, no cost), and
every torch operation that mixes tensors of two devices is rejected, as CUDA would reject it (CPU
scalars, 0-dim, are allowed, as on CUDA; so are CPU index tensors in ``x[idx]``). Reading a meta
tensor's values (``.item()``, ``float(t)``, ``.tolist()``) gives zeros, so logging code and loops over
positions do not stop the check.

    error = on_meta(model, images)          # None when the forward pass stays on one device
    calls = record_calls(...)               # the arguments notebook code really passed (see below)
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

# Operations that legitimately take tensors of two devices.
CROSS_DEVICE = {torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.Tensor.to, torch.Tensor.copy_,
                torch.Tensor.cpu, torch.Tensor.cuda, torch.Tensor.type_as}
# Reading a value (a logged loss, a diagnostic) is fine on a GPU; a meta tensor has none, so it reads 0.
READ_VALUE = {torch.Tensor.item: 0, torch.Tensor.__float__: 0.0, torch.Tensor.__int__: 0,
              torch.Tensor.__bool__: False, torch.Tensor.__index__: 0}


class DeviceMismatch(RuntimeError):
    pass


class _OneDevice(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in READ_VALUE and args and args[0].device.type == "meta":
            return READ_VALUE[func]
        if func is torch.Tensor.tolist and args and args[0].device.type == "meta":  # zeros of its shape
            return torch.zeros(args[0].shape, dtype=args[0].dtype).tolist()
        if func not in CROSS_DEVICE:
            tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            devices = {t.device.type for t in tensors if not (t.device.type == "cpu" and t.dim() == 0)}
            if len(devices) > 1:
                shapes = ", ".join(f"{tuple(t.shape)} on {t.device.type}" for t in tensors)
                name = getattr(func, "__qualname__", getattr(func, "__name__", str(func)))
                raise DeviceMismatch(f"{name} mixes devices ({shapes}): a tensor was created on the CPU "
                                     "instead of on the input's device")
        return func(*args, **kwargs)


def to_meta(value):
    """Modules (copied) and tensors (empty, same shape and dtype) on the meta device; the rest as is."""
    if isinstance(value, nn.Module):
        # Tensors a module keeps from its last forward (e.g. attention maps) are not graph leaves and
        # cannot be deep-copied: copy them detached.
        memo = {id(v): v.detach() for m in value.modules() for v in vars(m).values()
                if isinstance(v, torch.Tensor) and not v.is_leaf}
        return copy.deepcopy(value, memo).to("meta")
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta").requires_grad_(value.requires_grad)
    return value


def on_meta(fn, *args, **kwargs) -> str | None:
    """Call ``fn`` (a module or a function) with its module and tensor arguments on the meta device.

    Returns None when every operation stayed on one device, else the error (device mistakes start
    with ``DeviceMismatch``; other errors are operations the meta device cannot run, e.g. ``.item()``).
    """
    fn, args, kwargs = to_meta(fn), tree_map(to_meta, args), tree_map(to_meta, kwargs)
    try:
        with _OneDevice():
            fn(*args, **kwargs)
    except DeviceMismatch as exc:
        return f"DeviceMismatch: {exc}"
    except Exception as exc:  # noqa: BLE001 - any other failure is reported to the test
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


class record_calls:  # lower case: used as a context manager, like a function
    """Record how notebook code calls its answers: the arguments of the first few calls.

    Inside ``with record_calls(functions, classes, keep) as calls:``

    - ``calls.wrapped`` holds recording stand-ins for ``functions`` (name -> function), to put in the
      notebook's namespace;
    - every method a class of ``classes`` defines (``forward_encoder``, ``forward``, ...) records its
      calls as ``"Class.method"``;
    - every forward pass of another module whose class a notebook defined (``__module__ ==
      "__main__"``) and ``keep(cls)`` accepts is recorded under the class name.

    ``calls.seen`` maps a name to a list of (callable, args, kwargs), at most ``per_name`` of them, of
    calls that returned (not those a test makes to see an error raised).
    """

    def __init__(self, functions: dict, classes=(), keep=lambda cls: True, per_name: int = 3) -> None:
        self.seen: dict[str, list] = {}
        self.keep, self.per_name, self.classes = keep, per_name, list(classes)
        self.wrapped = {name: self._wrap(name, fn) for name, fn in functions.items()}
        self._restore: list[tuple] = []

    def _add(self, name, fn, args, kwargs):
        found = self.seen.setdefault(name, [])
        if len(found) < self.per_name:
            found.append((fn, args, kwargs))

    def _wrap(self, name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            result = fn(*args, **kwargs)
            self._add(name, fn, args, kwargs)  # calls meant to raise (a test of bad input) are not kept
            return result

        return wrapper

    def _hook(self, module, args, output):
        cls = type(module)
        if cls.__module__ == "__main__" and cls not in self.classes and self.keep(cls):
            self._add(cls.__name__, module, args, {})

    def __enter__(self):
        for cls in self.classes:
            for attr, fn in list(vars(cls).items()):
                if callable(fn) and not attr.startswith("__") and not isinstance(fn, (type, staticmethod, classmethod)):
                    self._restore.append((cls, attr, fn))
                    setattr(cls, attr, self._wrap(f"{cls.__name__}.{attr}", fn))
        self._handle = nn.modules.module.register_module_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self._handle.remove()
        for cls, attr, fn in reversed(self._restore):
            setattr(cls, attr, fn)
        return False
