"""Chapter 5: DINO on the digits without labels, the diagnostics of collapse, a few-shot probe.

``train_dino`` is the training loop of the notebook, the reading page and ``benchmarks/05_dino.py``
(its settings in one place, ``DINOConfig``):
multi-crop views of random batches, a student (backbone + DINO head) and an EMA teacher, linear
learning-rate warm-up and gradient clipping as in the official recipe. It records, at every step, the
three numbers that tell healthy training from the two collapses, computed from the teacher's
probabilities q (centered with the center from before the step):

- ``teacher_entropy``: mean over images of H(q), 0 when one prototype wins, log K when q is uniform;
- ``marginal_entropy``: H of q averaged over the batch, how many prototypes are in use;
- ``kl``: KL(teacher || student) averaged over the view pairs, 0 when nothing is left to learn.

The head, loss, EMA update and momentum schedule are arguments, so the notebook runs the loop with
the student's own implementation of them. Backbones: ``PixelMLP`` (the collapse experiments) or the
course ViT without a head, ``digits_vit(num_classes=0, mlp_ratio=2.0)``, whose output is the class
token. ``vitcourse.analysis`` (``features``, ``few_shot_accuracy``, ``knn_accuracy``) probes what a
backbone learned.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from vitcourse import env
from vitcourse.analysis import entropy
from vitcourse.models.dino import (
    DINOHead,
    DINOLoss,
    MultiCrop,
    MultiCropWrapper,
    cosine_momentum,
    ema_update,
    teacher_probs,
    teacher_temp_schedule,
)

__all__ = ["DINOConfig", "DINORun", "PixelMLP", "train_dino"]


@dataclass
class DINORun:
    """What ``train_dino`` returns: the networks and the per-step diagnostics."""

    student: nn.Module  # MultiCropWrapper(backbone, head)
    teacher: nn.Module  # the same architecture, an EMA of the student
    initial: nn.Module  # the backbone as it was before training (the random initialisation)
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    config: DINOConfig | None = None  # the settings of the run


class PixelMLP(nn.Module):
    """The smallest backbone: views resized to 16 px, flattened, two linear layers. (B, 1, H, W) -> (B, dim)."""

    def __init__(self, dim: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(256, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 16:
            x = F.interpolate(x, size=16, mode="bilinear", align_corners=False)
        return self.net(x)


@torch.no_grad()
def _output_dim(backbone: nn.Module, images: torch.Tensor) -> int:
    was_training = backbone.training
    out = backbone.eval()(images[:2])
    backbone.train(was_training)
    return out.shape[-1]


@dataclass
class DINOConfig:
    """Every setting of a ``train_dino`` run, with the chapter's defaults for the 16 px digits."""

    steps: int = 100
    batch: int = 32  # images per step, drawn with replacement
    crops: MultiCrop | None = None  # None: MultiCrop.tiny(), 2 global 16 px and 4 local 8 px views
    # head: MLP -> bottleneck -> K prototypes
    K: int = 64
    hidden_dim: int = 256
    bottleneck_dim: int = 64
    nlayers: int = 3
    norm_last_layer: bool = True
    use_bn: bool = True  # BatchNorm in the head, which small backbones need (see the chapter)
    # loss: centering and sharpening of the teacher (center_momentum=1 turns centering off,
    # teacher_temp == student_temp sharpening); the warm-up of the teacher temperature from
    # teacher_temp_start over teacher_temp_warmup steps works with the library loss only
    teacher_temp: float = 0.03
    teacher_temp_start: float | None = None
    teacher_temp_warmup: int = 0
    student_temp: float = 0.1
    center_momentum: float = 0.9
    # teacher: EMA momentum, a constant or (base, final) for the momentum schedule
    momentum: float | tuple[float, float] = 0.97
    # optimiser: AdamW, learning rate warmed up linearly over `warmup` steps, gradients clipped at `clip`
    lr: float = 1e-3
    warmup: int = 20
    weight_decay: float = 0.04
    clip: float | None = 3.0
    seed: int = 0


def train_dino(
    make_backbone: Callable[[], nn.Module],
    images: torch.Tensor,
    config: DINOConfig | None = None,
    *,
    device=None,
    progress: bool = False,
    head_cls=DINOHead,
    loss_cls=DINOLoss,
    ema: Callable = ema_update,
    momentum_schedule: Callable = cosine_momentum,
    **options,
) -> DINORun:
    """Pretrain ``make_backbone()`` with DINO on ``images`` (N, C, H, W), no labels. Returns a ``DINORun``.

    The run's settings are ``config`` (default ``DINOConfig()``) with any of its fields changed by
    ``options``: ``train_dino(PixelMLP, images, steps=60, teacher_temp=0.1)``. Every step: a batch,
    ``crops`` views of it, the loss of ``loss_cls(K, teacher_temp, student_temp, center_momentum,
    ncrops=...)`` over the student's outputs on all views and the teacher's on the 2 global ones, an
    AdamW step, then ``ema(student, teacher, m)`` with m from ``momentum`` (through
    ``momentum_schedule`` when it is a pair). The head, loss, EMA and schedule are arguments so that a
    notebook can run the loop with the student's own. Seeded by ``seed``.
    """
    unknown = sorted(set(options) - {f.name for f in fields(DINOConfig)})
    if unknown:
        raise TypeError(f"train_dino() got unknown settings {unknown}: the settings are DINOConfig's fields")
    c = replace(config or DINOConfig(), **options)
    device = torch.device(device) if device else env.device()
    crops = c.crops or MultiCrop.tiny()
    torch.manual_seed(c.seed)  # the backbone's and the head's initial weights
    g = torch.Generator().manual_seed(c.seed)  # batches and views
    backbone = make_backbone()
    initial = copy.deepcopy(backbone)
    head = head_cls(_output_dim(backbone, images), c.K, c.hidden_dim, c.bottleneck_dim, nlayers=c.nlayers,
                    norm_last_layer=c.norm_last_layer, use_bn=c.use_bn)
    student = MultiCropWrapper(backbone, head).to(device)
    teacher = copy.deepcopy(student).requires_grad_(False)
    loss_fn = loss_cls(c.K, c.teacher_temp, c.student_temp, c.center_momentum, ncrops=crops.num_views).to(device)
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=c.lr, weight_decay=c.weight_decay)
    # per-step diagnostics, kept on the device and read once at the end (a read waits for a GPU)
    on_device: dict[str, list[torch.Tensor]] = {"loss": [], "teacher_entropy": [], "marginal_entropy": []}
    start = time.perf_counter()
    for step in tqdm(range(env.steps(c.steps)), disable=not progress, file=sys.stdout, desc="DINO", leave=False):
        x = images[torch.randint(len(images), (c.batch,), generator=g)].to(device)
        views = crops(x, generator=g)
        for group in opt.param_groups:
            group["lr"] = c.lr * min(1.0, (step + 1) / max(c.warmup, 1))
        temp = teacher_temp_schedule(step, c.teacher_temp_warmup, c.teacher_temp_start or c.teacher_temp, c.teacher_temp)
        with torch.no_grad():
            t_out = teacher(views[:2])
            q = teacher_probs(t_out, loss_fn.center, temp)  # with the center before this step's update
        s_out = student(views)
        loss = loss_fn(s_out, t_out) if temp == c.teacher_temp else loss_fn(s_out, t_out, teacher_temp=temp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if c.clip:
            nn.utils.clip_grad_norm_(student.parameters(), c.clip)
        opt.step()
        m = c.momentum if isinstance(c.momentum, (int, float)) else momentum_schedule(step, c.steps, *c.momentum)
        ema(student, teacher, m)
        on_device["loss"].append(loss.detach())
        on_device["teacher_entropy"].append(entropy(q).mean())
        on_device["marginal_entropy"].append(entropy(q.mean(0)))
    history = {k: torch.stack(v).reshape(len(v)).tolist() if v else [] for k, v in on_device.items()}
    # mean cross-entropy minus mean teacher entropy
    history["kl"] = [ce - h for ce, h in zip(history["loss"], history["teacher_entropy"])]
    return DINORun(student, teacher, initial, history, time.perf_counter() - start, c)
