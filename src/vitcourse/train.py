"""One small training loop for every chapter.

``fit`` trains with AdamW and a cosine learning rate (with optional warm-up; or one-cycle, or
constant), shows a progress bar, uses CUDA and mixed precision when there is a GPU, and returns a
``History`` for plots. It reads batches from a DataLoader, or from ``RandomBatches``: a fixed number
of random batches drawn from tensors, optionally augmented. The progress bar writes to stdout, never
stderr: nbgrader counts a test cell that writes to stderr as failed.
``VITCOURSE_MAX_STEPS`` (``vitcourse.env.steps``) caps the steps of ``fit`` and the batches of
``evaluate``: the course's smoke test runs the `full` budget that way on a CPU.

On a GPU the host must not wait for the device more than it needs to: batches are copied with
``non_blocking=True`` (asynchronous from pinned memory), and the losses and correct counts stay on the
device and are read back every ``SYNC_EVERY`` steps and at the end of each epoch, not at every step.
Every run's final numbers go to ``vitcourse.metrics.record`` (for the course's benchmarks).
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from vitcourse import env, metrics
from vitcourse.env import seed_everything

__all__ = ["History", "RandomBatches", "fit", "evaluate", "amp_settings", "SCHEDULES"]

SCHEDULES = ("cosine", "onecycle", "constant")
SYNC_EVERY = 25  # steps between two reads of the losses on the host (each read waits for the GPU)


@dataclass
class History:
    """What happened during training: per step and per epoch."""

    step: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    epoch: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def plot(self, title: str | None = None):
        from vitcourse.viz import plot_history

        return plot_history(self, title)


class RandomBatches:
    """``steps`` batches of ``batch_size`` (image, label) rows drawn with replacement from two tensors.

    Each batch goes through ``augment(images, generator)`` when given (e.g. ``vitcourse.augment.
    random_shift``). Every draw comes from ``generator`` (default: a new one seeded with ``seed``),
    so a run repeats exactly; a model may share that generator (MAE draws its masks from it).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 64, steps: int = 100, *,
                 augment=None, generator: torch.Generator | None = None, seed: int = 0) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels: give one label per image")
        self.images, self.labels, self.batch_size, self.steps, self.augment = images, labels, batch_size, steps, augment
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            i = torch.randint(0, len(self.labels), (self.batch_size,), generator=self.generator)
            x = self.images[i]
            yield (x if self.augment is None else self.augment(x, self.generator)), self.labels[i]


def _logits(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def _schedule(name: str, optimizer, lr: float, total: int, warmup_steps: int):
    if name == "onecycle":  # torch's OneCycleLR: warm-up over 10% of the steps, then cosine annealing
        if total <= 10:
            raise ValueError(f"schedule='onecycle' needs more than 10 steps (warm-up is 10% of them), got {total}")
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=0.1)
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    if name != "cosine":
        raise ValueError(f"schedule={name!r}: use one of {SCHEDULES}")

    def cosine(s: int) -> float:  # linear warm-up, then a half cosine down to 0
        if s < warmup_steps:
            return min(1.0, (s + 1) / warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * (s - warmup_steps) / max(1, total - warmup_steps)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device=None) -> float:
    """Accuracy of ``model`` on ``loader`` (eval mode; the mode is restored afterwards)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, total = torch.zeros((), dtype=torch.long, device=device), 0
    for x, y in itertools.islice(loader, env.max_steps()):  # every batch, unless VITCOURSE_MAX_STEPS caps them
        pred = _logits(model(x.to(device, non_blocking=True))).argmax(dim=1)
        correct += (pred == y.to(device, non_blocking=True)).sum()  # stays on the device: no wait per batch
        total += len(y)
    model.train(was_training)
    return correct.item() / max(total, 1)


def amp_settings(device: torch.device, amp: bool | None = None) -> tuple[bool, torch.dtype, bool]:
    """(autocast on, autocast dtype, loss scaling on) for training on ``device``.

    ``amp=None`` turns mixed precision on for a GPU only. A GPU computes in float16 (every CUDA GPU has
    it, Colab's T4 included), whose narrow range needs the loss scaled (``GradScaler``) so that small
    gradients do not round to zero; bfloat16, the CPU's autocast type, has float32's range and needs
    no scaling.
    """
    enabled = device.type == "cuda" if amp is None else amp
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return enabled, dtype, enabled and dtype == torch.float16


def fit(model: nn.Module, train_loader, *, epochs: int = 1, max_steps: int | None = None, lr: float = 1e-3,
        weight_decay: float = 0.05, schedule: str = "cosine", warmup_steps: int = 0, loss_fn=None, forward=None,
        eval_loader=None, device=None, amp: bool | None = None, seed: int = 0, progress: bool = True,
        time_budget_s: float | None = None) -> History:
    """Train ``model`` with AdamW and return its History.

    train_loader: a DataLoader, ``RandomBatches`` or any re-iterable of (inputs, labels) with a length.
    schedule: "cosine" (after ``warmup_steps`` of linear warm-up), "onecycle" or "constant".
    forward(model, x) computes the output (default ``model(x)``); loss_fn(output, labels, inputs)
    defaults to cross-entropy on the (first) logits. Training stops after ``epochs``, ``max_steps`` or
    ``time_budget_s``, whichever comes first; accuracy on the training batches seen (when the output
    is logits) and on ``eval_loader`` is recorded after every epoch. The model ends in eval mode.
    """
    seed_everything(seed)
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast, amp_dtype, scaling = amp_settings(device, amp)
    model.to(device).train()
    forward = forward or (lambda m, x: m(x))
    loss_fn = loss_fn or (lambda out, y, x: F.cross_entropy(_logits(out), y))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    planned = epochs * len(train_loader) if max_steps is None else min(max_steps, epochs * len(train_loader))
    total = env.steps(planned)  # VITCOURSE_MAX_STEPS cuts the run short; the schedule stays the planned one
    scheduler = _schedule(schedule, optimizer, lr, planned, warmup_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=scaling)
    history, step, start = History(), 0, time.perf_counter()
    bar = tqdm(total=total, disable=not progress, file=sys.stdout, desc="training", leave=False)
    losses = []  # this window's losses, still on the device

    def read_losses():  # one wait for the device for the whole window
        if losses:
            history.loss.extend(torch.stack(losses).float().tolist())
            losses.clear()
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}")

    for epoch in range(1, epochs + 1):
        correct, seen = torch.zeros((), dtype=torch.long, device=device), 0
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=autocast):
                out = forward(model, x)
                loss = loss_fn(out, y, x)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            history.step.append(step), history.lr.append(scheduler.get_last_lr()[0])
            losses.append(loss.detach().reshape(()))
            logits = _logits(out)
            if logits.ndim == 2 and len(logits) == len(y):
                correct += (logits.argmax(1) == y).sum()
                seen += len(y)
            bar.update(1)
            if len(losses) >= SYNC_EVERY:
                read_losses()
            out_of_time = time_budget_s is not None and time.perf_counter() - start > time_budget_s
            if step >= total or out_of_time:
                break
        read_losses()
        history.epoch.append(epoch)
        if seen:
            history.train_acc.append(correct.item() / seen)
        if eval_loader is not None:
            history.test_acc.append(evaluate(model, eval_loader, device))
        history.seconds.append(time.perf_counter() - start)
        if step >= total or out_of_time:
            break
    bar.close()
    model.eval()
    metrics.record("fit", steps=step, planned_steps=planned, loss=history.loss[-1] if history.loss else None,
                   train_acc=history.train_acc[-1] if history.train_acc else None,
                   test_acc=history.test_acc[-1] if history.test_acc else None, seconds=time.perf_counter() - start,
                   parameters=sum(p.numel() for p in model.parameters()), device=device.type,
                   amp=str(amp_dtype).removeprefix("torch.") if autocast else None)
    return history
