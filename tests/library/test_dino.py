"""vitcourse.models.dino against straightforward re-computations and the official definitions."""

import copy
import math

import pytest
import torch
from torch import nn

from vitcourse.models.dino import (
    DINOHead,
    DINOLoss,
    MultiCrop,
    MultiCropWrapper,
    cosine_momentum,
    ema_update,
    teacher_temp_schedule,
)
from vitcourse.models.vit import digits_vit


def slow_dino_loss(student, teacher, center, ncrops, tt, st):
    """Element by element: for each image, each teacher global view i and each student view v != i."""
    B = teacher.shape[0] // 2
    total, pairs = 0.0, 0
    for i in range(2):
        for v in range(ncrops):
            if v == i:
                continue
            pairs += 1
            for b in range(B):
                t = teacher[i * B + b].double()
                q = torch.exp((t - center.double()) / tt)
                q = q / q.sum()
                s = student[v * B + b].double() / st
                logp = s - torch.logsumexp(s, 0)
                total += float(-(q * logp).sum()) / B
    return total / pairs, pairs


@pytest.mark.parametrize("ncrops,B,K", [(2, 3, 5), (6, 4, 16), (10, 2, 7)])
def test_loss_matches_straightforward_computation(ncrops, B, K):
    g = torch.Generator().manual_seed(ncrops)
    student, teacher = torch.randn(ncrops * B, K, generator=g), torch.randn(2 * B, K, generator=g)
    loss_fn = DINOLoss(K, teacher_temp=0.04, student_temp=0.1, ncrops=ncrops)
    loss_fn.center.copy_(torch.randn(1, K, generator=g) * 0.3)
    center = loss_fn.center.clone()
    expected, pairs = slow_dino_loss(student, teacher, center[0], ncrops, 0.04, 0.1)
    assert pairs == 2 * ncrops - 2
    assert float(loss_fn(student, teacher)) == pytest.approx(expected, rel=1e-5)


def test_loss_with_scheduled_teacher_temperature():
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(6 * 2, 8, generator=g), torch.randn(4, 8, generator=g)
    loss_fn = DINOLoss(8, ncrops=6)
    expected, _ = slow_dino_loss(student, teacher, torch.zeros(8), 6, 0.07, 0.1)
    assert float(loss_fn(student, teacher, teacher_temp=0.07)) == pytest.approx(expected, rel=1e-5)


def test_center_is_updated_after_the_loss_by_ema_of_teacher_batch_mean():
    g = torch.Generator().manual_seed(2)
    K, B = 6, 3
    loss_fn = DINOLoss(K, center_momentum=0.9, ncrops=4)
    c0 = torch.randn(1, K, generator=g)
    loss_fn.center.copy_(c0)
    student, teacher = torch.randn(4 * B, K, generator=g), torch.randn(2 * B, K, generator=g)
    expected, _ = slow_dino_loss(student, teacher, c0[0], 4, 0.04, 0.1)  # old center in the loss
    assert float(loss_fn(student, teacher)) == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(loss_fn.center, 0.9 * c0 + 0.1 * teacher.mean(0, keepdim=True))
    assert not loss_fn.center.requires_grad


def test_centering_off_keeps_center_at_zero():
    loss_fn = DINOLoss(5, ncrops=2, center_momentum=1.0)
    loss_fn(torch.randn(4, 5), torch.randn(4, 5) + 3)
    assert torch.equal(loss_fn.center, torch.zeros(1, 5))


def test_loss_rejects_wrong_crop_count():
    with pytest.raises(ValueError, match="ncrops"):
        DINOLoss(4, ncrops=10)(torch.randn(12, 4), torch.randn(4, 4))


def test_teacher_gets_no_gradient():
    torch.manual_seed(0)
    student = MultiCropWrapper(nn.Sequential(nn.Flatten(), nn.Linear(16, 8)), DINOHead(8, 10, 16, 4))
    teacher = copy.deepcopy(student).requires_grad_(False)
    views = [torch.randn(3, 1, 4, 4) for _ in range(4)]
    loss = DINOLoss(10, ncrops=4)(student(views), teacher(views[:2]))
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)


def test_ema_closed_form_after_k_steps():
    torch.manual_seed(0)
    student, teacher = nn.Linear(3, 2), nn.Linear(3, 2)
    t0 = [p.detach().clone() for p in teacher.parameters()]
    s = [p.detach().clone() for p in student.parameters()]
    m, k = 0.9, 7
    for _ in range(k):
        ema_update(student, teacher, m)
    for pt, p0, ps in zip(teacher.parameters(), t0, s):
        torch.testing.assert_close(pt, m**k * p0 + (1 - m**k) * ps)
        assert pt.grad is None


def test_ema_varying_momentum_and_product_form():
    torch.manual_seed(1)
    student, teacher = nn.Linear(2, 2), nn.Linear(2, 2)
    t0, s = teacher.weight.detach().clone(), student.weight.detach().clone()
    ms = [cosine_momentum(i, 5, 0.9, 1.0) for i in range(5)]
    for m in ms:
        ema_update(student, teacher, m)
    keep = math.prod(ms)
    torch.testing.assert_close(teacher.weight, keep * t0 + (1 - keep) * s)


def test_cosine_momentum_schedule():
    assert cosine_momentum(0, 100) == pytest.approx(0.996)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    assert cosine_momentum(50, 100) == pytest.approx(0.998)
    values = [cosine_momentum(i, 100) for i in range(101)]
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_teacher_temperature_warmup():
    assert teacher_temp_schedule(0, 30, 0.04, 0.07) == pytest.approx(0.04)
    assert teacher_temp_schedule(15, 30, 0.04, 0.07) == pytest.approx(0.055)
    assert teacher_temp_schedule(40, 30, 0.04, 0.07) == pytest.approx(0.07)


def test_head_structure_and_normalised_last_layer():
    head = DINOHead(384, 1000)
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(384, 2048), (2048, 2048), (2048, 256)]
    assert sum(isinstance(m, nn.GELU) for m in head.mlp) == 2
    g = head.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.all(g == 1)
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(1000))
    out = head(torch.randn(5, 384))
    assert out.shape == (5, 1000) and out.abs().max() <= 1 + 1e-5  # cosines
    assert DINOHead(8, 4, norm_last_layer=False).last_layer.parametrizations.weight.original0.requires_grad
    assert isinstance(DINOHead(8, 4, nlayers=1).mlp, nn.Linear)


def test_wrapper_groups_views_by_size():
    calls = []

    class Backbone(nn.Module):
        def forward(self, x):
            calls.append(tuple(x.shape))
            return x.mean(dim=(1, 2, 3)).unsqueeze(1).repeat(1, 4)

    wrap = MultiCropWrapper(Backbone(), nn.Identity())
    views = [torch.rand(2, 1, 16, 16)] * 2 + [torch.rand(2, 1, 8, 8)] * 3
    assert wrap(views).shape == (10, 4)
    assert calls == [(4, 1, 16, 16), (6, 1, 8, 8)]


def test_course_vit_reads_global_and_local_crops():
    torch.manual_seed(0)
    vit = digits_vit(num_classes=0, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0)

    class CLS(nn.Module):
        def __init__(self):
            super().__init__()
            self.vit = vit

        def forward(self, x):
            return self.vit.forward_features(x)[:, 0]

    student = MultiCropWrapper(CLS(), DINOHead(32, 16, 64, 8))
    views = MultiCrop.tiny()(torch.rand(3, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    out = student(views)
    assert out.shape == (6 * 3, 16)
    DINOLoss(16, ncrops=6)(out, out[:6].detach()).backward()
    assert vit.pos_embed.grad is not None and vit.pos_embed.grad.abs().sum() > 0
