"""Chapter 5 (DINO): plausible student bugs, each of which must lose points, and the BUGS dict."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from bugs_05_crops_head import MultiCropOneFlip, dino_head, head_layers, multicrop, multicrop_scales_swapped
from nbexec import Variant

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


def loss_more(base, *, fixed_teacher_temp=False, cpu_total=False, center_from_student=False, center_first_view=False,
              center_momentum_swapped=False):
    """The solution's DINOLoss with one more mistake in the temperatures, the sum or the center."""

    class Buggy(base):
        def forward(self, student_output, teacher_output):
            tt = 0.04 if fixed_teacher_temp else self.teacher_temp
            student = (student_output / self.student_temp).chunk(self.ncrops)
            teacher = F.softmax((teacher_output - self.center) / tt, dim=-1).detach().chunk(2)
            total, pairs = (torch.zeros(1) if cpu_total else 0.0), 0
            for i, q in enumerate(teacher):
                for v, s in enumerate(student):
                    if v != i:
                        total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
                        pairs += 1
            loss = (total / pairs).reshape(())
            if center_from_student:
                self.update_center(student_output)
            elif center_first_view:
                self.update_center(teacher_output[: teacher_output.shape[0] // 2])
            else:
                self.update_center(teacher_output)
            return loss

        @torch.no_grad()
        def update_center(self, teacher_output):
            m = 1 - self.center_momentum if center_momentum_swapped else self.center_momentum
            self.center.mul_(m).add_(teacher_output.mean(dim=0, keepdim=True), alpha=1 - m)

    return Buggy


@torch.no_grad()
def ema_weights_only(student, teacher, momentum):
    """Averages the weights and forgets the biases."""
    for ms, mt in zip(student.modules(), teacher.modules()):
        if isinstance(ms, nn.Linear):
            mt.weight.mul_(momentum).add_(ms.weight, alpha=1 - momentum)


def cosine_final_ignored(step, total_steps, base=0.996, final=1.0):
    return 1.0 - (1.0 - base) * (1 + math.cos(math.pi * step / total_steps)) / 2


def cosine_off_by_one(step, total_steps, base=0.996, final=1.0):
    return final - (final - base) * (1 + math.cos(math.pi * step / max(total_steps - 1, 1))) / 2


def collapse_last_step(teacher_entropy, marginal_entropy, K):
    h = teacher_entropy[-1]
    return "one-hot" if h < 0.25 * math.log(K) else "uniform" if h > 0.95 * math.log(K) else "healthy"


def collapse_k64(teacher_entropy, marginal_entropy, K):
    h = sum(teacher_entropy[-10:]) / len(teacher_entropy[-10:])
    return "one-hot" if h < 0.25 * math.log(64) else "uniform" if h > 0.95 * math.log(64) else "healthy"


def collapse_divides_by_ten(teacher_entropy, marginal_entropy, K):
    h = sum(teacher_entropy[-10:]) / 10
    return "one-hot" if h < 0.25 * math.log(K) else "uniform" if h > 0.95 * math.log(K) else "healthy"


def collapse_log2(teacher_entropy, marginal_entropy, K):
    h = sum(teacher_entropy[-10:]) / len(teacher_entropy[-10:])
    return "one-hot" if h < 0.25 * math.log2(K) else "uniform" if h > 0.95 * math.log2(K) else "healthy"


def loss_temps(base, *, swapped=False, softmax_over_batch=False, sum_over_batch=False):
    """The solution's DINOLoss with the temperatures swapped, the teacher softmax over the batch or the
    cross-entropy summed (not averaged) over the batch."""

    class Buggy(base):
        def forward(self, student_output, teacher_output):
            t_temp, s_temp = (self.student_temp, self.teacher_temp) if swapped else (self.teacher_temp,
                                                                                      self.student_temp)
            student = (student_output / s_temp).chunk(self.ncrops)
            q_all = F.softmax((teacher_output - self.center) / t_temp, dim=0 if softmax_over_batch else -1)
            total, pairs = 0, 0
            for i, q in enumerate(q_all.detach().chunk(2)):
                for v, s in enumerate(student):
                    if v != i:
                        ce = torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1)
                        total = total + (ce.sum() if sum_over_batch else ce.mean())
                        pairs += 1
            self.update_center(teacher_output)
            return total / pairs

    return Buggy


def loss_float64(base):
    class Float64(base):
        """Computes the loss in float64 "for stability" and returns it so."""

        def forward(self, student_output, teacher_output):
            return super().forward(student_output.double(), teacher_output.double())

        @torch.no_grad()
        def update_center(self, teacher_output):
            super().update_center(teacher_output.float())

    return Float64


def ema_without_no_grad(student, teacher, momentum):
    """Forgets torch.no_grad(): the teacher's parameters join the student's autograd graph."""
    for ps, pt in zip(student.parameters(), teacher.parameters()):
        pt.mul_(momentum).add_(ps, alpha=1 - momentum)


BUGS = {
    "same-view pairs included": Variant(dino_loss(same_view=True), "test_dino_loss"),
    "centering the student instead of the teacher": Variant(
        dino_loss(center_student=True), "test_dino_loss", "test_center"),
    "center updated before the loss": Variant(dino_loss(update_first=True), "test_dino_loss", "test_center"),
    "gradient flows into the teacher": Variant(dino_loss(no_detach=True), "test_dino_loss"),
    "averaged over 2V terms instead of 2V - 2": Variant(dino_loss(divide_by_all=True), "test_dino_loss"),
    "EMA with the momentum swapped": Variant({"ema_update": ema_swapped}, "test_ema"),
    "momentum schedule reversed": Variant({"cosine_momentum": cosine_reversed}, "test_ema"),
    "momentum schedule linear": Variant({"cosine_momentum": cosine_linear}, "test_ema"),
    "collapse thresholds on K, not log K": Variant({"collapse_state": collapse_state_raw_entropy}, "test_collapse"),
    "collapse read from the marginal entropy": Variant(
        {"collapse_state": collapse_state_last_value_marginal}, "test_collapse"),
    "head without the L2 bottleneck": Variant(dino_head(no_l2=True), "test_dino_head"),
    "head with the weight-norm scale g trained": Variant(dino_head(train_g=True), "test_dino_head"),
    "multi-crop with global and local scales swapped": Variant(multicrop_scales_swapped, "test_multicrop"),
    "multi-crop without flips": Variant(multicrop(flip_p=0.0), "test_multicrop"),
    "multi-crop flips every view": Variant(multicrop(flip_p=1.0), "test_multicrop"),
    "multi-crop: one global crop used twice": Variant(multicrop(reuse_global=True), "test_multicrop"),
    "multi-crop: one local crop repeated": Variant(multicrop(reuse_local=True), "test_multicrop"),
    "multi-crop: scale arguments ignored": Variant(multicrop(default_scales=True), "test_multicrop"),
    "head: BatchNorm after the GELU": Variant(head_layers(bn_after_gelu=True), "test_dino_head"),
    "head: ReLU instead of GELU": Variant(head_layers(relu=True), "test_dino_head"),
    "head: PyTorch's default initialisation": Variant(head_layers(default_init=True), "test_dino_head"),
    "head: last layer with a bias": Variant(head_layers(bias=True), "test_dino_head"),
    "head: L2 norm over the batch": Variant(head_layers(normalize_dim0=True), "test_dino_head"),
    "loss: teacher temperature fixed at 0.04": Variant(
        lambda ns: {"DINOLoss": loss_more(ns["DINOLoss"], fixed_teacher_temp=True)}, "test_dino_loss"),
    "loss: sum started in a CPU tensor": Variant(
        lambda ns: {"DINOLoss": loss_more(ns["DINOLoss"], cpu_total=True)}, "test_dino_loss"),
    "center from the student's outputs": Variant(
        lambda ns: {"DINOLoss": loss_more(ns["DINOLoss"], center_from_student=True)}, "test_center"),
    "center from the first global view only": Variant(
        lambda ns: {"DINOLoss": loss_more(ns["DINOLoss"], center_first_view=True)}, "test_center"),
    "center momentum on the wrong side": Variant(
        lambda ns: {"DINOLoss": loss_more(ns["DINOLoss"], center_momentum_swapped=True)}, "test_center"),
    "EMA of the weights only": Variant({"ema_update": ema_weights_only}, "test_ema"),
    "momentum schedule ignores final": Variant({"cosine_momentum": cosine_final_ignored}, "test_ema"),
    "momentum schedule divides by total_steps - 1": Variant({"cosine_momentum": cosine_off_by_one}, "test_ema"),
    "collapse read from the last step only": Variant({"collapse_state": collapse_last_step}, "test_collapse"),
    "collapse thresholds for K = 64 only": Variant({"collapse_state": collapse_k64}, "test_collapse"),
    "collapse: short runs divided by 10": Variant({"collapse_state": collapse_divides_by_ten}, "test_collapse"),
    "collapse thresholds on log2 K": Variant({"collapse_state": collapse_log2}, "test_collapse"),
    "multi-crop: one flip per call, before cropping": Variant({"MultiCrop": MultiCropOneFlip}, "test_multicrop"),
    "loss: teacher and student temperatures swapped": Variant(
        lambda ns: {"DINOLoss": loss_temps(ns["DINOLoss"], swapped=True)}, "test_dino_loss"),
    "loss: teacher softmax over the batch": Variant(
        lambda ns: {"DINOLoss": loss_temps(ns["DINOLoss"], softmax_over_batch=True)}, "test_dino_loss"),
    "loss: summed over the batch": Variant(
        lambda ns: {"DINOLoss": loss_temps(ns["DINOLoss"], sum_over_batch=True)}, "test_dino_loss"),
    "EMA outside torch.no_grad()": Variant({"ema_update": ema_without_no_grad}, "test_ema"),
    "loss returned in float64": Variant(lambda ns: {"DINOLoss": loss_float64(ns["DINOLoss"])}, "test_dino_loss"),
}
