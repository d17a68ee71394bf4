"""Chapter 4: a CNN teacher and a ViT distilled from it, on the digits.

Shared by the notebook, the reading page and ``benchmarks/04_deit.py``:

- ``digits_split``: the 16 px digits standardised, with a small stratified training set;
- ``augment``: random shifts and one cut-out square, filled with the background value;
- ``train_teacher``: ``SmallCNN`` trained on shifted digits;
- ``train_student``: a distilled ViT trained with ``DistillationLoss`` of a given kind on cut-out
  views (the same batches for every kind);
- ``report``: accuracy of each head, and how often it picks the teacher's class.

Models come back on the CPU in eval mode, whatever device they were trained on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from vitcourse import augment as aug
from vitcourse import data, env, metrics
from vitcourse.models.deit import MODES, DistillationLoss, SmallCNN, distillation_step, predict
from vitcourse.train import RandomBatches, fit

__all__ = ["DIGITS_MEAN", "DIGITS_STD", "digits_split", "augment", "train_teacher", "train_student", "report"]

DIGITS_MEAN, DIGITS_STD = 0.3, 0.4  # rough pixel statistics of the 16 px digits, for standardising


def digits_split(seed: int = 0, train_size: int = 500) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test): the 16 px digits, standardised, ``train_size`` of them for
    training (stratified, chosen by ``seed``) and the rest for testing."""
    splits = [data.digits(16, split, seed=seed, train_size=train_size).tensors for split in ("train", "test")]
    (xtr, ytr), (xte, yte) = splits
    return (xtr - DIGITS_MEAN) / DIGITS_STD, ytr, (xte - DIGITS_MEAN) / DIGITS_STD, yte


def augment(x: torch.Tensor, generator: torch.Generator | None = None, max_shift: int = 0,
            erase: int = 0) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels, then blank one ``erase`` x ``erase`` square;
    both fill with the background (the smallest value of the batch). (B, C, H, W) -> same."""
    background = float(x.min())
    if max_shift:
        x = aug.random_shift(x, max_shift, generator, fill=background)
    if erase:
        x = aug.cut_out(x, erase, generator, fill=background)
    return x


def train_teacher(x: torch.Tensor, y: torch.Tensor, steps: int = 300, seed: int = 0, batch: int = 64,
                  device=None) -> nn.Module:
    """``SmallCNN`` trained on images shifted by up to 2 px (AdamW, lr 3e-3, constant)."""
    torch.manual_seed(seed)
    teacher = SmallCNN(in_chans=x.shape[1], num_classes=int(y.max()) + 1)
    batches = RandomBatches(x, y, batch, steps, seed=seed, augment=lambda b, g: augment(b, g, max_shift=2))
    fit(teacher, batches, lr=3e-3, weight_decay=1e-4, schedule="constant", device=device, progress=False)
    return teacher.cpu().eval()


def train_student(make_student: Callable[[], nn.Module], teacher: nn.Module, kind: str, x: torch.Tensor,
                  y: torch.Tensor, steps: int = 300, seed: int = 0, batch: int = 64, lr: float = 1e-2,
                  shift: int = 0, erase: int = 6, alpha: float = 0.5, tau: float = 1.0, device=None,
                  loss_cls=DistillationLoss, step=distillation_step) -> nn.Module:
    """A distilled ViT (``make_student()``, built after seeding with ``seed``) trained with
    ``loss_cls(CrossEntropyLoss(), teacher, alpha, tau, kind)`` on views shifted by up to ``shift`` px
    and cut out by ``erase`` px.

    Each of the ``steps`` batches goes through ``step(model, criterion, optimizer, images, labels,
    make_view)``, which draws the batch's view and lets the student and the teacher read it. The batches
    and views depend on ``seed`` only, so every ``kind`` sees the same ones. AdamW (weight decay 0.05)
    with a one-cycle learning rate peaking at ``lr``. ``loss_cls`` and ``step`` let the notebook train
    with the student's own ``DistillationLoss`` and training step.
    """
    device = torch.device(device) if device else env.device()
    torch.manual_seed(seed)
    model = make_student().to(device)
    criterion = loss_cls(nn.CrossEntropyLoss(), teacher, alpha=alpha, tau=tau, kind=kind).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    batches = RandomBatches(x, y, batch, env.steps(steps), seed=seed + 1000)

    def make_view(images: torch.Tensor) -> torch.Tensor:
        return augment(images, batches.generator, max_shift=shift, erase=erase).to(device)

    start, loss, done = time.perf_counter(), None, 0
    for images, labels in batches:
        loss = step(model, criterion, optimizer, images, labels.to(device), make_view)
        scheduler.step()
        done += 1
    metrics.record("train_student", distillation=kind, steps=done, planned_steps=steps, loss=loss,
                   seconds=time.perf_counter() - start, parameters=sum(p.numel() for p in model.parameters()),
                   device=device.type)
    teacher.cpu()  # the loss had moved it to the student's device
    return model.cpu().eval()


@torch.no_grad()
def report(model: nn.Module, teacher: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[float, float]]:
    """For each head ("cls", "dist", "avg"): (accuracy, agreement with the teacher's class) on x."""
    t = teacher(x).argmax(1)
    row = {}
    for mode in MODES:
        p = predict(model, x, mode).argmax(1)
        row[mode] = ((p == y).float().mean().item(), (p == t).float().mean().item())
    return row
