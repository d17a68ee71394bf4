"""vitcourse.models.deit: the DeiT loss against hand-written formulas, the frozen teacher, inference modes."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.models.deit import DistillationLoss, SmallCNN, distillation_term, forward_heads, predict


def reference_loss(student_cls, student_dist, teacher_logits, labels, kind, alpha, tau):
    """The DeiT loss written out element by element (no F.kl_div), as in the paper and official code."""
    base = F.cross_entropy(student_cls, labels)
    if kind == "none":
        return base
    B, K = student_dist.shape
    if kind == "soft":
        p_t = torch.softmax(teacher_logits / tau, dim=1)
        log_p_s = torch.log_softmax(student_dist / tau, dim=1)
        kl_sum = (p_t * (torch.log(p_t) - log_p_s)).sum()
        distill = kl_sum * tau**2 / (B * K)  # the official code divides by numel, not by B
    else:
        targets = teacher_logits.argmax(dim=1)
        distill = -torch.log_softmax(student_dist, dim=1)[torch.arange(B), targets].mean()
    return (1 - alpha) * base + alpha * distill


class FixedTeacher(nn.Module):
    """A 'teacher' returning fixed logits, with a batch norm and a parameter to check it stays frozen."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.bn = nn.BatchNorm1d(1)
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.bn(x.reshape(x.shape[0], -1)[:, :1])  # would update running stats in train mode
        return self.logits * self.w


@pytest.mark.parametrize("kind", ["none", "soft", "hard"])
@pytest.mark.parametrize("alpha,tau", [(0.5, 1.0), (0.1, 3.0), (0.9, 0.5)])
def test_loss_equals_reference_on_fixed_logits(kind, alpha, tau):
    g = torch.Generator().manual_seed(0)
    B, K = 6, 5
    s_cls, s_dist, t = (torch.randn(B, K, generator=g) * 3 for _ in range(3))
    labels = torch.randint(0, K, (B,), generator=g)
    x = torch.randn(B, 1, 4, 4, generator=g)
    crit = DistillationLoss(nn.CrossEntropyLoss(), FixedTeacher(t), alpha=alpha, tau=tau, kind=kind)
    got = crit(x, (s_cls, s_dist), labels)
    want = reference_loss(s_cls, s_dist, t, labels, kind, alpha, tau)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_soft_term_known_value_and_tau_squared():
    # identical distributions give zero; the tau^2 factor keeps the gradient size as tau grows
    z = torch.randn(4, 10)
    assert distillation_term(z, z, "soft", 2.0).abs() < 1e-6
    s = torch.zeros(1, 2, requires_grad=True)
    t = torch.tensor([[math.log(3.0), 0.0]])  # teacher p = (3/4, 1/4)
    loss = distillation_term(s, t, "soft", 1.0)
    want = (0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)) / 2  # KL / numel
    assert abs(loss.item() - want) < 1e-6


def test_none_uses_cls_logits_only_and_accepts_a_tensor():
    crit = DistillationLoss(nn.CrossEntropyLoss(), None, kind="none")
    s_cls, s_dist = torch.randn(3, 4), torch.randn(3, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2])
    assert torch.equal(crit(None, (s_cls, s_dist), y), F.cross_entropy(s_cls, y))
    assert torch.equal(crit(None, s_cls, y), F.cross_entropy(s_cls, y))


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="one of"):
        DistillationLoss(nn.CrossEntropyLoss(), None, kind="kl")
    with pytest.raises(ValueError, match="needs a teacher"):
        DistillationLoss(nn.CrossEntropyLoss(), None, kind="hard")
    crit = DistillationLoss(nn.CrossEntropyLoss(), FixedTeacher(torch.zeros(2, 3)), kind="soft")
    with pytest.raises(ValueError, match="distillation head"):
        crit(torch.zeros(2, 1, 2, 2), torch.zeros(2, 3), torch.tensor([0, 1]))


def test_teacher_stays_in_eval_mode_and_gets_no_gradient():
    torch.manual_seed(0)
    teacher = SmallCNN().train()
    crit = DistillationLoss(nn.CrossEntropyLoss(), teacher, alpha=0.5, tau=2.0, kind="soft")
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    crit.train()  # e.g. model.train() on a wrapper that holds the loss
    assert not teacher.training
    teacher.train()  # woken up by mistake after the loss was built
    stats = [b.clone() for b in teacher.buffers()]
    student = SmallCNN(num_classes=10)
    x, y = torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,))
    out = student(x)
    crit(x, (out, out), y).backward()
    assert not teacher.training
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(stats, teacher.buffers()))  # BN running stats untouched
    assert all(p.grad is not None for p in student.parameters())


def test_predict_modes_match_timm_distilled_forward():
    from timm.models.deit import VisionTransformerDistilled

    torch.manual_seed(0)
    m = VisionTransformerDistilled(img_size=16, patch_size=4, in_chans=1, num_classes=7, embed_dim=32, depth=2, num_heads=2).eval()
    with torch.no_grad():
        m.head_dist.weight.add_(torch.randn_like(m.head_dist.weight))
    x = torch.randn(3, 1, 16, 16)
    cls, dist = forward_heads(m, x)
    assert torch.equal(predict(m, x, "cls"), cls) and torch.equal(predict(m, x, "dist"), dist)
    assert not torch.allclose(cls, dist)
    with torch.no_grad():
        torch.testing.assert_close(predict(m, x, "avg"), m(x))  # timm (and the official code): mean of logits
    with pytest.raises(ValueError, match="one of"):
        predict(m, x, "softmax")


def test_small_cnn_shapes():
    assert SmallCNN()(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    assert SmallCNN(in_chans=3, num_classes=4)(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_course_vit_distilled_token_layout():
    from vitcourse.models.vit import digits_vit

    torch.manual_seed(0)
    m = digits_vit(embed_dim=32, depth=2, num_heads=2, distilled=True)
    assert m.num_prefix_tokens == 2
    assert m.pos_embed.shape == (1, 16 + 2, 32)  # the position embedding covers cls and dist
    x = torch.randn(2, 1, 16, 16)
    assert m.forward_features(x).shape == (2, 18, 32)
    cls, dist = forward_heads(m, x)
    assert cls.shape == dist.shape == (2, 10)
    m.eval()
    torch.testing.assert_close(predict(m, x, "avg"), (cls + dist) / 2)


def test_distillation_step_shows_the_teacher_the_view_the_student_reads():
    from vitcourse.models.deit import distillation_step

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 6)

        def forward(self, x):
            out = self.linear(x.flatten(1))
            return out[:, :3], out[:, 3:]

    torch.manual_seed(0)
    model = TwoHeads()
    read_by_teacher, views = [], []

    class Teacher(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x):
            read_by_teacher.append(x)
            return self.linear(x.flatten(1))

    def make_view(images):
        views.append(images.flip(-1) * (1 + len(views)))
        return views[-1]

    criterion = DistillationLoss(nn.CrossEntropyLoss(), Teacher(), kind="hard")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.linear.weight.detach().clone()
    images, labels = torch.randn(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    loss = distillation_step(model, criterion, optimizer, images, labels, make_view)
    assert isinstance(loss, float) and len(views) == 1
    assert read_by_teacher[0] is views[0]  # the teacher labels the very view the student read
    assert not torch.equal(model.linear.weight, before)
