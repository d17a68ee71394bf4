"""Chapter 8: does a small ViT park global information in background tokens?

The task needs global information: a 24 x 24 canvas, mostly empty, holds two 8 x 8 digits at random
places on the 4 px patch grid (6 x 6 = 36 patches, about 8 of them with ink), and the label says
whether the two digits are the same class (half the pairs are). No single patch can answer. Shared
by the notebook and ``benchmarks/08_registers.py``:

- ``digit_pairs``: the canvases, labels and which patches hold ink;
- ``train_pairs``: a model trained on them (AdamW, one-cycle learning rate);
- ``measure``: accuracy, norms of the tokens leaving the last block (before the final norm, where
  Darcet et al. measure) on background and ink patches, how many are flagged as artifacts, and where
  the class token attends in the last block.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vitcourse import data
from vitcourse.analysis import attention_maps, block_tokens
from vitcourse.models.registers import attention_shares, find_artifact_tokens, split_tokens
from vitcourse.train import RandomBatches, fit

__all__ = ["CANVAS", "PATCH", "digit_pairs", "train_pairs", "measure"]

CANVAS, PATCH = 24, 4
PIXEL_MEAN, PIXEL_STD = 0.1, 0.3  # rough statistics of the canvases, for standardising


def digit_pairs(n: int, seed: int = 0, split: str = "train") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(canvases (n, 1, 24, 24) standardised, labels (n,) with 1 = same class, ink (n, 36) bool).

    The digits come from ``data.digits(8, split)``: training and test canvases use different images.
    """
    images, targets = data.digits(8, split).tensors
    g = torch.Generator().manual_seed(seed)
    grid = CANVAS // PATCH
    x, ink = torch.zeros(n, 1, CANVAS, CANVAS), torch.zeros(n, grid, grid, dtype=torch.bool)
    y = (torch.rand(n, generator=g) < 0.5).long()
    for i in range(n):
        c1 = int(torch.randint(0, 10, (1,), generator=g))
        c2 = c1 if y[i] else (c1 + int(torch.randint(1, 10, (1,), generator=g))) % 10
        r1, q1 = (int(v) for v in torch.randint(0, grid - 1, (2,), generator=g))
        while True:  # the second digit's top-left corner, not overlapping the first
            r2, q2 = (int(v) for v in torch.randint(0, grid - 1, (2,), generator=g))
            if abs(r2 - r1) >= 2 or abs(q2 - q1) >= 2:
                break
        for c, (r, q) in ((c1, (r1, q1)), (c2, (r2, q2))):
            pick = torch.nonzero(targets == c)[:, 0]
            j = pick[int(torch.randint(0, len(pick), (1,), generator=g))]
            x[i, 0, r * PATCH:r * PATCH + 8, q * PATCH:q * PATCH + 8] = images[j, 0]
            ink[i, r:r + 2, q:q + 2] = True
    return (x - PIXEL_MEAN) / PIXEL_STD, y, ink.flatten(1)


def train_pairs(make_model: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, steps: int, seed: int = 0,
                lr: float = 2e-3, batch: int = 64, device=None) -> nn.Module:
    """``make_model()`` (built after seeding with ``seed``) trained on the canvases; back on the CPU."""
    torch.manual_seed(seed)
    model = make_model()
    fit(model, RandomBatches(x, y, batch, steps, seed=seed), lr=lr, weight_decay=0.05, schedule="onecycle",
        device=device, progress=False)
    return model.cpu().eval()


@torch.no_grad()
def measure(model: nn.Module, num_registers: int, x: torch.Tensor, y: torch.Tensor, ink: torch.Tensor) -> dict:
    """What the chapter reports for a trained model on canvases x with labels y and ink mask (B, 36)."""
    R, bg = num_registers, ~ink
    acc = (model(x).argmax(1) == y).float().mean().item()
    _, regs, patches = split_tokens(block_tokens(model, x), R)
    norms = patches.norm(dim=-1)  # (B, N)
    flags = find_artifact_tokens(patches)
    attn = attention_maps(model, x, [-1])[0]  # (B, heads, T, T)
    shares = attention_shares(attn, R, ink)  # (B, 4): itself, registers, ink, background
    a_patch = attn.mean(1)[:, 0, 1 + R:]  # (B, N): the class token's row over the patches
    return {
        "acc": acc,
        "norm_bg": norms[bg].median().item(),
        "norm_ink": norms[ink].median().item(),
        "norm_bg_max": norms[bg].max().item(),
        "flagged_bg": flags[bg].float().mean().item(),
        "flagged_ink": flags[ink].float().mean().item(),
        "reg_norm": regs.norm(dim=-1).median().item() if R else None,
        "attn_self": shares[:, 0].mean().item(),
        "attn_reg": shares[:, 1].mean().item(),
        "attn_ink": shares[:, 2].mean().item(),
        "attn_bg": shares[:, 3].mean().item(),
        "attn_top_bg": (a_patch * bg).max(1).values.mean().item(),  # the most-attended background patch
    }
