"""Counting the cost of a model: MACs and FLOPs, kept apart.

One multiply-accumulate (MAC) is two floating-point operations (FLOPs). Model tables often print
MACs under the name "FLOPs"; ``torch.utils.flop_counter.FlopCounterMode`` counts FLOPs.

- ``measured_macs``: runs a model under ``FlopCounterMode`` on the ``meta`` device (no memory, no
  time, and fused attention is counted — on the CPU it is not) and returns FLOPs / 2;
- ``count_params``, ``format_count``.

The analytic count of a ViT's MACs, ``vitcourse.models.patches.vit_macs``, is chapter 1's exercise.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["measured_macs", "count_params", "format_count"]


def measured_macs(model: nn.Module, input_shape: tuple[int, ...] | torch.Tensor) -> int:
    """MACs of ``model(x)`` for an input of ``input_shape``, measured by ``FlopCounterMode``.

    The model is copied to the ``meta`` device (the original is left alone); a model already on
    ``meta`` is used as it is. Returns FLOPs // 2.
    """
    shape = tuple(input_shape.shape) if isinstance(input_shape, torch.Tensor) else tuple(input_shape)
    on_meta = all(p.is_meta for p in model.parameters())
    meta_model = model if on_meta else copy.deepcopy(model).to("meta")
    meta_model.eval()
    x = torch.empty(shape, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta_model(x)
    return counter.get_total_flops() // 2


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (works on the meta device too)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def format_count(n: float) -> str:
    """4_600_000_000 -> '4.60 G', 22_050_000 -> '22.05 M'."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"
