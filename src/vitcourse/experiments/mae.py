"""Chapter 6: pre-training a masked autoencoder on the digits.

``pretrain`` is the loop of the notebook, the reading page, ``benchmarks/06_mae.py`` and the tests:
random batches, the MAE's own loss (masked patches only), AdamW with a constant learning rate. One
generator draws both the batches and the masks, so a run repeats exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from vitcourse.train import History, RandomBatches, fit

__all__ = ["pretrain"]


def pretrain(model: nn.Module, images: torch.Tensor, steps: int, seed: int = 0, lr: float = 2e-3, batch: int = 64,
             mask_ratio: float = 0.75, device=None) -> History:
    """Train an MAE (``model(images, mask_ratio, generator) -> (loss, pred, mask)``) for ``steps`` steps.

    Returns the History (``history.loss``: the masked-patch loss per step); the model ends on the CPU,
    in eval mode.
    """
    g = torch.Generator().manual_seed(seed)
    batches = RandomBatches(images, torch.zeros(len(images), dtype=torch.long), batch, steps, generator=g)
    history = fit(model, batches, lr=lr, weight_decay=0.01, schedule="constant", device=device, progress=False,
                  forward=lambda m, x: m(x, mask_ratio, generator=g), loss_fn=lambda out, labels, inputs: out[0])
    model.cpu()
    return history
