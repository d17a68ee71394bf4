"""vitcourse.experiments and the parts of vitcourse.train they use: short, seeded runs."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitcourse import train
from vitcourse.experiments import deit, dino, registers
from vitcourse.models.vit import digits_vit


class PixelMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(256, 64), nn.GELU(), nn.Linear(64, 32))

    def forward(self, x):
        return self.net(F.interpolate(x, size=16, mode="bilinear", align_corners=False))


@pytest.fixture(scope="module")
def digits16():
    from vitcourse import data

    return data.digits(16, "train").tensors


@pytest.mark.chapter("03-vit")
def test_random_batches_repeat_and_augment():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    a = list(train.RandomBatches(x, y, batch_size=4, steps=3, seed=1))
    b = list(train.RandomBatches(x, y, batch_size=4, steps=3, seed=1))
    assert len(a) == 3 and all(torch.equal(u[0], v[0]) for u, v in zip(a, b))
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in a)  # rows stay paired with their labels
    shifted = list(train.RandomBatches(x, y, 4, 2, seed=1, augment=lambda b, g: b + 100))
    assert all(bx.min() >= 100 for bx, _ in shifted)
    with pytest.raises(ValueError, match="labels"):
        train.RandomBatches(x, y[:5])


@pytest.mark.chapter("03-vit")
@pytest.mark.parametrize("schedule", train.SCHEDULES)
def test_fit_schedules(schedule):
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    history = train.fit(nn.Linear(5, 3), train.RandomBatches(x, y, 16, 20), lr=0.1, schedule=schedule,
                        warmup_steps=5, progress=False)
    lrs = history.lr
    if schedule == "constant":
        assert lrs == [pytest.approx(0.1)] * 20
    else:  # rise to the peak within the first steps, then decay towards 0
        assert lrs.index(max(lrs)) < 5 and lrs[-1] < 0.01 and max(lrs) == pytest.approx(0.1, rel=0.05)
        assert schedule == "onecycle" or lrs[0] < max(lrs)  # cosine: the 5 warm-up steps are visible
    with pytest.raises(ValueError, match="schedule"):
        train.fit(nn.Linear(5, 3), train.RandomBatches(x, y, 16, 2), schedule="step", progress=False)


@pytest.mark.chapter("03-vit")
def test_fit_forward_and_loss_hooks_see_inputs():
    seen = []

    def loss_fn(out, labels, inputs):
        seen.append(inputs.shape)
        return out.pow(2).mean()

    x, y = torch.randn(8, 4), torch.zeros(8, dtype=torch.long)
    history = train.fit(nn.Linear(4, 2), train.RandomBatches(x, y, 4, 3), forward=lambda m, b: m(b) * 2,
                        loss_fn=loss_fn, progress=False)
    assert seen == [(4, 4)] * 3 and len(history.loss) == 3


@pytest.mark.chapter("05-dino")
def test_dino_collapse_regimes_and_diagnostics(digits16):
    images = digits16[0]
    runs = {name: dino.train_dino(PixelMLP, images, steps=60, teacher_temp=tt, center_momentum=cm, seed=0, device="cpu")
            for name, (tt, cm) in {"no centering": (0.03, 1.0), "no sharpening": (0.1, 0.9)}.items()}
    log_k = math.log(64)
    h = runs["no centering"].history
    assert sum(h["teacher_entropy"][-10:]) / 10 < 0.25 * log_k  # one prototype wins
    u = runs["no sharpening"].history
    assert sum(u["teacher_entropy"][-10:]) / 10 > 0.95 * log_k  # every prototype equally likely
    for run in runs.values():
        hist = run.history
        assert set(hist) == {"loss", "teacher_entropy", "marginal_entropy", "kl"} and len(hist["kl"]) == 60
        assert all(abs(k - (loss - t)) < 1e-6 for k, loss, t in zip(hist["kl"], hist["loss"], hist["teacher_entropy"]))
        assert all(t <= m + 1e-5 for t, m in zip(hist["teacher_entropy"], hist["marginal_entropy"]))  # concavity
        assert all(p.grad is None for p in run.teacher.parameters())
    again = dino.train_dino(PixelMLP, images, steps=60, teacher_temp=0.03, center_momentum=1.0, seed=0, device="cpu")
    assert again.history == h
    start = runs["no centering"].initial
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), PixelMLPSeeded().state_dict().values()))


def PixelMLPSeeded():
    torch.manual_seed(0)
    return PixelMLP()


@pytest.mark.chapter("05-dino")
def test_entropy_and_probes():
    assert float(dino.entropy(torch.tensor([1.0, 0.0]))) == 0
    assert float(dino.entropy(torch.full((8,), 1 / 8))) == pytest.approx(math.log(8))
    labels = torch.arange(4).repeat(5)
    feats = F.normalize(F.one_hot(labels, 4).float() + 0.01 * torch.randn(20, 4), dim=-1)
    assert dino.few_shot_accuracy(feats, labels, feats, labels, shots=1, draws=3) == 1.0
    assert dino.knn_accuracy(feats, labels, feats, labels, k=3) == 1.0
    noise = F.normalize(torch.randn(20, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert dino.few_shot_accuracy(noise, labels, noise, labels, shots=1, draws=5) < 0.7


@pytest.mark.chapter("04-deit")
def test_deit_split_teacher_student_and_report():
    xtr, ytr, xte, yte = deit.digits_split(seed=1, train_size=200)
    assert len(xtr) == 200 and len(xtr) + len(xte) == 1797 and torch.bincount(ytr).min() >= 19
    assert abs(float(xtr.mean())) < 0.3 and 0.6 < float(xtr.std()) < 1.6  # standardised
    teacher = deit.train_teacher(xtr, ytr, steps=30)
    assert not teacher.training and next(teacher.parameters()).device.type == "cpu"
    make = lambda: digits_vit(embed_dim=16, depth=1, num_heads=2, distilled=True)
    a = deit.train_student(make, teacher, "hard", xtr, ytr, steps=12)
    b = deit.train_student(make, teacher, "hard", xtr, ytr, steps=12)
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))
    none = deit.train_student(make, teacher, "none", xtr, ytr, steps=12)
    assert torch.equal(none.head_dist.weight, make_seeded(make).head_dist.weight)  # no signal without a teacher
    row = deit.report(a, teacher, xte[:50], yte[:50])
    assert set(row) == {"cls", "dist", "avg"} and all(0 <= v <= 1 for pair in row.values() for v in pair)
    erased = deit.augment(xte[:8], torch.Generator().manual_seed(0), erase=6)
    assert int((erased == float(xte[:8].min())).all(dim=1).sum()) >= 8 * 36


def make_seeded(make, seed=0):
    torch.manual_seed(seed)
    return make()


@pytest.mark.chapter("08-registers")
def test_register_canvases_and_measurements():
    x, y, ink = registers.digit_pairs(64, seed=0)
    assert x.shape == (64, 1, 24, 24) and ink.shape == (64, 36) and 16 < int(y.sum()) < 48
    assert torch.all(ink.sum(1) == 8)  # two digits of 2 x 2 patches that never overlap
    _, _, ink_test = registers.digit_pairs(8, seed=0, split="test")
    assert ink_test.shape == (8, 36)
    make = lambda: digits_vit(img_size=24, num_classes=2, embed_dim=16, depth=1, num_heads=2,
                              num_registers=4, no_embed_class=True)
    model = registers.train_pairs(make, x, y, steps=12)
    m = registers.measure(model, 4, x, y, ink)
    assert 0 <= m["acc"] <= 1 and m["reg_norm"] > 0
    assert m["attn_self"] + m["attn_reg"] + m["attn_ink"] + m["attn_bg"] == pytest.approx(1.0, abs=1e-5)
