"""Chapter 5 graded tests, checked both ways.

The solution passes every graded cell on 10 seeds; each plausible bug below fails the cell meant to
catch it. (Running the notebooks in a kernel, nbgrader validate and the release sync are in
tests/test_notebooks.py.)
"""

import math

import torch
import torch.nn.functional as F

from nbexec import Variant
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/05-dino/05-dino.ipynb"


# Plausible student bugs ------------------------------------------------------------------------

def loss_variant(base, *, same_view=False, center_student=False, update_first=False, no_detach=False,
                 divide_by_all=False):
    """The solution's DINOLoss with one mistake switched on."""

    class Buggy(base):
        def forward(self, student_output, teacher_output):
            if update_first:
                self.update_center(teacher_output)
            if center_student:
                student = ((student_output - self.center) / self.student_temp).chunk(self.ncrops)
                q_all = F.softmax(teacher_output / self.teacher_temp, dim=-1)
            else:
                student = (student_output / self.student_temp).chunk(self.ncrops)
                q_all = F.softmax((teacher_output - self.center) / self.teacher_temp, dim=-1)
            teacher = (q_all if no_detach else q_all.detach()).chunk(2)
            total, pairs = 0.0, 0
            for i, q in enumerate(teacher):
                for v, s in enumerate(student):
                    if v == i and not same_view:
                        continue
                    total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
                    pairs += 1
            loss = total / (2 * self.ncrops if divide_by_all else pairs)
            if not update_first:
                self.update_center(teacher_output)
            return loss

    return Buggy


@torch.no_grad()
def ema_swapped(student, teacher, momentum):
    """teacher <- (1 - m) teacher + m student: the momentum on the wrong side."""
    for ps, pt in zip(student.parameters(), teacher.parameters()):
        pt.mul_(1 - momentum).add_(ps, alpha=momentum)


def cosine_reversed(step, total_steps, base=0.996, final=1.0):
    """Starts at final and ends at base."""
    return base + (final - base) * (1 + math.cos(math.pi * step / total_steps)) / 2


def cosine_linear(step, total_steps, base=0.996, final=1.0):
    """A linear ramp instead of the half cosine."""
    return base + (final - base) * step / total_steps


def head_variant(base, *, no_l2=False, train_g=False):
    class Buggy(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if train_g:
                self.last_layer.parametrizations.weight.original0.requires_grad_(True)

        def forward(self, x):
            x = self.mlp(x)
            return self.last_layer(x if no_l2 else F.normalize(x, dim=-1))

    return Buggy


def collapse_state_raw_entropy(teacher_entropy, marginal_entropy, K):
    """Compares with K instead of log K."""
    h = sum(teacher_entropy[-10:]) / 10
    return "one-hot" if h < 0.25 * K else "uniform" if h > 0.95 * K else "healthy"


def collapse_state_last_value_marginal(teacher_entropy, marginal_entropy, K):
    """Looks at the marginal entropy: a healthy run then reads as uniform-ish or healthy by chance."""
    h = marginal_entropy[-1]
    return "one-hot" if h < 0.25 * math.log(K) else "uniform" if h > 0.7 * math.log(K) else "healthy"


def dino_loss(**flags):
    return lambda ns: {"DINOLoss": loss_variant(ns["DINOLoss"], **flags)}


def dino_head(**flags):
    return lambda ns: {"DINOHead": head_variant(ns["DINOHead"], **flags)}


def multicrop_scales_swapped(ns):
    class Swapped(ns["MultiCrop"]):
        def __init__(self, global_size=224, local_size=96, num_local=8, global_scale=(0.4, 1.0),
                     local_scale=(0.05, 0.4)):
            super().__init__(global_size, local_size, num_local, local_scale, global_scale)

    return {"MultiCrop": Swapped}


BUGS = {
    "same-view pairs included": Variant(dino_loss(same_view=True), "test_dino_loss"),
    "centering the student instead of the teacher": Variant(dino_loss(center_student=True), "test_dino_loss", "test_center"),
    "center updated before the loss": Variant(dino_loss(update_first=True), "test_dino_loss", "test_center"),
    "gradient flows into the teacher": Variant(dino_loss(no_detach=True), "test_dino_loss"),
    "averaged over 2V terms instead of 2V - 2": Variant(dino_loss(divide_by_all=True), "test_dino_loss"),
    "EMA with the momentum swapped": Variant({"ema_update": ema_swapped}, "test_ema"),
    "momentum schedule reversed": Variant({"cosine_momentum": cosine_reversed}, "test_ema"),
    "momentum schedule linear": Variant({"cosine_momentum": cosine_linear}, "test_ema"),
    "collapse thresholds on K, not log K": Variant({"collapse_state": collapse_state_raw_entropy}, "test_collapse"),
    "collapse read from the marginal entropy": Variant({"collapse_state": collapse_state_last_value_marginal}, "test_collapse"),
    "head without the L2 bottleneck": Variant(dino_head(no_l2=True), "test_dino_head"),
    "head with the weight-norm scale g trained": Variant(dino_head(train_g=True), "test_dino_head"),
    "multi-crop with global and local scales swapped": Variant(multicrop_scales_swapped, "test_multicrop"),
}


def test_healthy_regime_beats_random_init_in_knn(run):
    """The section-6 experiment ran in the solution: pretrained features beat random init clearly."""
    ns = run.namespace
    accs = {}
    for name, net in (("random", ns["run"].initial), ("dino", ns["run"].teacher.backbone)):
        ftr, fte = ns["features"](net, ns["train_x"]), ns["features"](net, ns["test_x"])
        accs[name] = ns["few_shot_accuracy"](ftr, ns["train_y"], fte, ns["test_y"], 1)
    assert accs["dino"] > accs["random"] + 0.08, accs
