"""Chapter 4 graded tests, checked both ways.

The solution passes every graded cell on 10 seeds; each plausible bug below fails the cell meant to
catch it. Inference rule decided from the paper and the official code: "avg" is the mean of the two
heads' *logits* (the official ``DistilledVisionTransformer.forward`` in eval mode and timm's
``forward_head``), so averaging softmax outputs is treated as a bug.
"""

import torch
import torch.nn.functional as F
from torch import nn

from nbexec import Variant
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/04-deit/04-deit.ipynb"


# Plausible student bugs ------------------------------------------------------------------------

def prefix_dist_first(patch_tokens, pos_embed, cls_token, dist_token):
    B = patch_tokens.shape[0]
    return torch.cat([dist_token.expand(B, -1, -1), cls_token.expand(B, -1, -1), patch_tokens], 1) + pos_embed


def prefix_dist_without_position(patch_tokens, pos_embed, cls_token, dist_token):
    """The distillation token gets no position embedding (the slot's embedding is skipped)."""
    B = patch_tokens.shape[0]
    cls = cls_token.expand(B, -1, -1) + pos_embed[:, :1]
    return torch.cat([cls, dist_token.expand(B, -1, -1), patch_tokens + pos_embed[:, 2:]], 1)


def make_vit_pos_without_dist(solution_cls):
    class PosWithoutDist(solution_cls):
        """pos_embed of N + 1 slots, as in a plain ViT; the dist token is concatenated after adding it."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pos_embed = nn.Parameter(self.pos_embed.detach()[:, 1:].clone())

        def forward_features(self, x):
            p = self.patch_embed(x)
            B = p.shape[0]
            x = torch.cat([self.cls_token.expand(B, -1, -1), p], 1) + self.pos_embed
            x = torch.cat([x[:, :1], self.dist_token.expand(B, -1, -1), x[:, 1:]], 1)
            return self.norm(self.blocks(x))

    return PosWithoutDist


def make_loss(solution_cls, distill):
    """A DistillationLoss whose distillation term is ``distill(dist_logits, teacher_logits, labels, tau)``."""

    class Buggy(solution_cls):
        def forward(self, inputs, outputs, labels):
            cls_logits, dist_logits = outputs if not isinstance(outputs, torch.Tensor) else (outputs, None)
            base = self.base_criterion(cls_logits, labels)
            if self.kind == "none":
                return base
            self.teacher.eval()
            with torch.no_grad():
                t = self.teacher(inputs)
            return (1 - self.alpha) * base + self.alpha * distill(self, dist_logits, t, labels)

    return Buggy


def _kl(d, t, T):
    return F.kl_div(F.log_softmax(d / T, 1), F.log_softmax(t / T, 1), reduction="sum", log_target=True)


def soft_without_tau_squared(self, d, t, y):
    return _kl(d, t, self.tau) / d.numel() if self.kind == "soft" else F.cross_entropy(d, t.argmax(1))


def soft_batchmean(self, d, t, y):
    return _kl(d, t, self.tau) * self.tau**2 / d.shape[0] if self.kind == "soft" else F.cross_entropy(d, t.argmax(1))


def soft_reversed_kl(self, d, t, y):
    if self.kind != "soft":
        return F.cross_entropy(d, t.argmax(1))
    T = self.tau
    return F.kl_div(F.log_softmax(t / T, 1), F.log_softmax(d / T, 1), reduction="sum", log_target=True) * T * T / d.numel()


def hard_on_labels(self, d, t, y):
    """The distillation head is trained on the true labels: a second class head, the teacher unused."""
    return _kl(d, t, self.tau) * self.tau**2 / d.numel() if self.kind == "soft" else F.cross_entropy(d, y)


def make_loss_teacher_in_train_mode(solution_cls):
    class TeacherTrain(solution_cls):
        def __init__(self, base_criterion, teacher, alpha=0.5, tau=1.0, kind="hard"):
            nn.Module.__init__(self)
            self.base_criterion, self.teacher, self.alpha, self.tau, self.kind = base_criterion, teacher, alpha, tau, kind
            if teacher is not None:
                teacher.requires_grad_(False)

        def train(self, mode=True):
            return nn.Module.train(self, mode)

        def forward(self, inputs, outputs, labels):
            cls_logits, dist_logits = outputs
            base = self.base_criterion(cls_logits, labels)
            with torch.no_grad():
                t = self.teacher(inputs)
            if self.kind == "soft":
                distill = _kl(dist_logits, t, self.tau) * self.tau**2 / dist_logits.numel()
            else:
                distill = F.cross_entropy(dist_logits, t.argmax(1))
            return (1 - self.alpha) * base + self.alpha * distill

    return TeacherTrain


def make_loss_teacher_with_grad(solution_cls):
    class TeacherGrad(solution_cls):
        def forward(self, inputs, outputs, labels):
            cls_logits, dist_logits = outputs
            self.teacher.requires_grad_(True)
            t = self.teacher(inputs)  # no torch.no_grad(): gradients flow into the teacher
            distill = F.cross_entropy(dist_logits, t.argmax(1)) if self.kind == "hard" else \
                _kl(dist_logits, t, self.tau) * self.tau**2 / dist_logits.numel()
            return (1 - self.alpha) * self.base_criterion(cls_logits, labels) + self.alpha * distill

    return TeacherGrad


def predict_softmax_average(model, x, mode="avg"):
    with torch.no_grad():
        tokens = model.forward_features(x)
        c, d = model.head(tokens[:, 0]), model.head_dist(tokens[:, 1])
    return {"cls": c, "dist": d, "avg": (c.softmax(-1) + d.softmax(-1)) / 2}[mode]


def predict_heads_swapped(model, x, mode="avg"):
    with torch.no_grad():
        tokens = model.forward_features(x)
        c, d = model.head(tokens[:, 1]), model.head_dist(tokens[:, 0])
    return {"cls": c, "dist": d, "avg": (c + d) / 2}[mode]


def loss(factory):
    """A DistillationLoss derived from the solution's own class by ``factory``."""
    return lambda ns: {"DistillationLoss": factory(ns["DistillationLoss"])}


BUGS = {
    "add_prefix_tokens: dist before cls": Variant(
        {"add_prefix_tokens": prefix_dist_first}, "test_add_prefix_tokens", "test_distilled_vit"),
    "add_prefix_tokens: dist token without position embedding": Variant(
        {"add_prefix_tokens": prefix_dist_without_position}, "test_add_prefix_tokens", "test_distilled_vit"),
    "predict: averages softmax outputs instead of logits": Variant({"predict": predict_softmax_average}, "test_predict"),
    "predict: heads read the wrong tokens": Variant({"predict": predict_heads_swapped}, "test_predict"),
    "soft: tau**2 missing": Variant(loss(lambda cls: make_loss(cls, soft_without_tau_squared)), "test_distillation_loss"),
    "soft: divided by the batch size, not the number of logits": Variant(
        loss(lambda cls: make_loss(cls, soft_batchmean)), "test_distillation_loss"),
    "soft: KL in the wrong direction": Variant(
        loss(lambda cls: make_loss(cls, soft_reversed_kl)), "test_distillation_loss"),
    "hard: distillation head trained on the labels": Variant(
        loss(lambda cls: make_loss(cls, hard_on_labels)), "test_distillation_loss", "test_dist_head_follows_teacher"),
    "teacher left in training mode": Variant(loss(make_loss_teacher_in_train_mode), "test_teacher_frozen"),
    "teacher called with gradients": Variant(loss(make_loss_teacher_with_grad), "test_teacher_frozen"),
    "DistilledViT: position embedding without the dist slot": Variant(
        lambda ns: {"DistilledViT": make_vit_pos_without_dist(ns["DistilledViT"])}, "test_distilled_vit"),
}


def test_reference_loss_matches_the_solution(run):
    """The notebook's solution and vitcourse.models.deit agree on random logits (same formulas)."""
    from vitcourse.models import deit as ref

    g = torch.Generator().manual_seed(0)
    teacher = nn.Linear(4, 5)
    for kind in ("none", "soft", "hard"):
        x, s, d = torch.randn(3, 4, generator=g), torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
        y = torch.randint(0, 5, (3,), generator=g)
        mine = run.namespace["DistillationLoss"](nn.CrossEntropyLoss(), teacher, 0.3, 2.0, kind)
        theirs = ref.DistillationLoss(nn.CrossEntropyLoss(), teacher, 0.3, 2.0, kind)
        torch.testing.assert_close(mine(x, (s, d), y), theirs(x, (s, d), y))
