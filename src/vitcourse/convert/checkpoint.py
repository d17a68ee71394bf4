"""Loading a converted state dict, and the perturbation that makes a conversion test meaningful."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["load_checked", "perturb"]


def load_checked(model: nn.Module, state_dict: dict) -> nn.Module:
    """Load ``state_dict`` into ``model`` strictly; the error names the first key that does not fit."""
    own = model.state_dict()
    for key in own:
        if key not in state_dict:
            raise KeyError(f"checkpoint has no entry for {key!r} (expected shape {tuple(own[key].shape)})")
        if tuple(state_dict[key].shape) != tuple(own[key].shape):
            raise ValueError(f"{key!r}: checkpoint shape {tuple(state_dict[key].shape)} does not fit the "
                             f"model's {tuple(own[key].shape)}")
    extra = [k for k in state_dict if k not in own]
    if extra:
        raise KeyError(f"checkpoint entry {extra[0]!r} has no place in the model")
    model.load_state_dict(state_dict)
    return model


def perturb(model: nn.Module, std: float = 0.02, seed: int = 0) -> nn.Module:
    """Add seeded Gaussian noise to every parameter, in place; returns the model in eval mode.

    A randomly initialised model holds exact zeros and ones (biases, LayerNorm, LayerScale) behind which
    a wrong weight mapping can hide; conversions are checked on perturbed models.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g).to(p) * std)
    return model.eval()
