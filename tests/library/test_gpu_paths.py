"""What only a GPU exercises, tested on the CPU: mixed precision (autocast dtypes, loss scaling), pinned
memory and asynchronous copies, and how often training waits for the device.

No GPU runs the suite. Each GPU-only branch of ``vitcourse.train`` and ``vitcourse.data`` is reached here
another way: bfloat16 autocast on the CPU, float16 with a ``GradScaler`` on the CPU (the GPU's recipe),
``torch.cuda.is_available`` mocked for the choices made from it, and a count of the host reads of device
values in ``fit``, ``train_dino`` and ``train_two_tower``.
"""

import contextlib
import io
import sys

import pytest
import torch
from torch import nn

from vitcourse import data, env, train


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 10))


def _batches(steps=60, batch_size=32):
    x, y = data.digits(8, "train").tensors
    return train.RandomBatches(x, y, batch_size=batch_size, steps=steps, seed=0)


@pytest.mark.parametrize("device,amp,expected", [
    ("cuda", None, (True, torch.float16, True)),     # a GPU: float16 and loss scaling, by default
    ("cuda", False, (False, torch.float16, False)),
    ("cpu", None, (False, torch.bfloat16, False)),   # a CPU: full precision by default
    ("cpu", True, (True, torch.bfloat16, False)),    # bfloat16 has float32's range: no scaling
])
def test_amp_settings(device, amp, expected):
    assert train.amp_settings(torch.device(device), amp) == expected


def _fit(model=None, **kwargs) -> train.History:
    return train.fit(model or _model(), _batches(), lr=1e-2, progress=False, **kwargs)


def _learns_as_in_float32(history: train.History) -> bool:
    """60 steps of mixed precision end where float32 ends (mean of the last 10 losses, ~0.34 from 2.32)."""
    final = sum(history.loss[-10:]) / 10
    reference = sum(_fit(amp=False).loss[-10:]) / 10
    return len(history.loss) == 60 and final < 0.25 * history.loss[0] and abs(final - reference) < 0.05


def test_fit_with_bfloat16_autocast():
    assert _learns_as_in_float32(_fit(amp=True))


def test_fit_with_float16_and_loss_scaling(monkeypatch):
    """The GPU's recipe (float16 autocast, GradScaler) run on the CPU: the scaler's scale, unscale,
    skipped steps and updates all happen; the weights stay float32 and the model learns."""
    monkeypatch.setattr(train, "amp_settings", lambda device, amp=None: (True, torch.float16, True))
    scalers = []
    real = torch.amp.GradScaler

    def recording(*args, **kwargs):
        scalers.append(real(*args, **kwargs))
        return scalers[-1]

    monkeypatch.setattr(torch.amp, "GradScaler", recording)
    model = _model()
    history = _fit(model)
    assert scalers[0].is_enabled() and scalers[0].get_scale() > 1  # the loss was scaled
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert _learns_as_in_float32(history)


class _HostReads:
    """Counts the calls in ``vitcourse/train.py`` (or in the bodies of ``functions``) that copy a
    tensor's values to Python: on a GPU each one waits for the device. (AdamW's own ``item()`` reads its
    step counter, a host tensor.)"""

    NAMES = ("item", "tolist", "__float__", "__int__", "__bool__", "cpu", "numpy")

    def __init__(self, monkeypatch, *functions):
        self.count = 0
        self.counted = {f.__code__ for f in functions}
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counting(original))

    def _counting(self, original):
        def method(tensor, *args, **kwargs):
            caller = sys._getframe(1).f_code
            watched = caller in self.counted if self.counted else caller.co_filename == train.__file__
            if watched:
                self.count += 1
            return original(tensor, *args, **kwargs)

        return method


def test_fit_reads_the_device_once_per_window_not_per_step(monkeypatch):
    steps = 100
    reference = train.fit(_model(), _batches(steps), lr=3e-3, progress=False)
    with monkeypatch.context() as m:
        reads = _HostReads(m)
        history = train.fit(_model(), _batches(steps), lr=3e-3, progress=False)
        counted = reads.count
    assert history.loss == reference.loss and len(history.loss) == steps  # still one loss per step
    windows = -(-steps // train.SYNC_EVERY)
    assert counted <= windows + 2, f"{counted} host reads in {steps} steps: the losses must stay on the device"


def test_dino_and_two_tower_training_read_their_histories_once(monkeypatch):
    """``train_dino``'s diagnostics and ``train_two_tower``'s losses stay on the device until the run ends."""
    from vitcourse.experiments import dino, vlm

    images, steps = torch.rand(64, 1, 16, 16), 12
    x, y = vlm.digit_tensors()[:2]
    reference = (dino.train_dino(dino.PixelMLP, images, steps=steps).history,
                 vlm.train_two_tower(vlm.make_two_tower(), x, y, steps=steps, batch_size=16)["loss"])
    with monkeypatch.context() as m:
        reads = _HostReads(m, dino.train_dino)
        history = dino.train_dino(dino.PixelMLP, images, steps=steps).history
        counted = [reads.count]
    with monkeypatch.context() as m:
        reads = _HostReads(m, vlm.train_two_tower)
        losses = vlm.train_two_tower(vlm.make_two_tower(), x, y, steps=steps, batch_size=16)["loss"]
        counted.append(reads.count)
    assert (history, losses) == reference and len(history["kl"]) == len(losses) == steps
    assert counted[0] <= 3 and counted[1] <= 1, f"host reads in {steps} steps (DINO, two towers): {counted}"


def test_batches_go_to_the_device_asynchronously_and_only_from_the_host(monkeypatch):
    """non_blocking=True is safe from host to device only: a non-blocking copy back to the host could be
    read before it arrives."""
    copies = []
    original = torch.Tensor.to

    def to(tensor, *args, **kwargs):
        copies.append((tensor.device.type, kwargs.get("non_blocking", False)))
        return original(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    train_loader, test_loader = data.digits_loaders(batch_size=128, img_size=8)
    train.fit(_model(), train_loader, epochs=1, eval_loader=test_loader, progress=False)
    asynchronous = [source for source, non_blocking in copies if non_blocking]
    assert asynchronous and set(asynchronous) == {"cpu"}


def test_a_gpu_machine_pins_batches_and_runs_the_full_budget(monkeypatch):
    monkeypatch.delenv("VITCOURSE_BUDGET", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.device().type == "cuda" and env.budget() == "full"
    assert train.amp_settings(env.device()) == (True, torch.float16, True)
    assert all(loader.pin_memory for loader in data.digits_loaders())


def test_a_cpu_machine_does_not_pin_and_warns_nothing(monkeypatch):
    """Pinned memory without a GPU makes PyTorch warn on stderr, which fails an nbgrader test cell."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaders = data.digits_loaders(batch_size=256, img_size=8)
    assert not any(loader.pin_memory for loader in loaders)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        train.fit(_model(), loaders[0], epochs=1, eval_loader=loaders[1], progress=False)
    assert err.getvalue() == ""
