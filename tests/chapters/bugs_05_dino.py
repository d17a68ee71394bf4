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


def _state(h, hm, K, log=math.log, constant=True):
    """The solution's decision from mean entropies, with the logarithm and the constant branch as given."""
    if h < 0.25 * log(K):
        return "one-hot"
    if h > 0.95 * log(K):
        return "uniform"
    return "constant" if constant and hm - h < 0.05 * log(K) else "healthy"


def _last10(values):
    return sum(values[-10:]) / len(values[-10:])


def collapse_state_raw_entropy(teacher_entropy, marginal_entropy, K):
    """Compares with K instead of log K."""
    return _state(_last10(teacher_entropy), _last10(marginal_entropy), K, log=lambda k: k)


def collapse_state_last_value_marginal(teacher_entropy, marginal_entropy, K):
    """Reads the state from the last marginal entropy alone."""
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
    return _state(teacher_entropy[-1], marginal_entropy[-1], K)


def collapse_k64(teacher_entropy, marginal_entropy, K):
    return _state(_last10(teacher_entropy), _last10(marginal_entropy), 64)


def collapse_divides_by_ten(teacher_entropy, marginal_entropy, K):
    return _state(sum(teacher_entropy[-10:]) / 10, sum(marginal_entropy[-10:]) / 10, K)


def collapse_log2(teacher_entropy, marginal_entropy, K):
    return _state(_last10(teacher_entropy), _last10(marginal_entropy), K, log=math.log2)


def collapse_without_constant(teacher_entropy, marginal_entropy, K):
    """Reads the teacher entropy alone: a run where every image gets the same distribution looks healthy."""
    return _state(_last10(teacher_entropy), _last10(marginal_entropy), K, constant=False)


def collapse_whole_run(teacher_entropy, marginal_entropy, K):
    """Averages the whole run instead of its last 10 steps."""
    return _state(sum(teacher_entropy) / len(teacher_entropy), sum(marginal_entropy) / len(marginal_entropy), K)


def collapse_equal_first(teacher_entropy, marginal_entropy, K):
    """Tests for equal entropies first: a one-hot or uniform collapse reads as 'constant'."""
    h, hm = _last10(teacher_entropy), _last10(marginal_entropy)
    if hm - h < 0.05 * math.log(K):
        return "constant"
    return _state(h, hm, K)


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


def at(cell, hint):
    """A bug seen by the visible checks of ``cell`` (the cell that grades it), with ``hint`` in the message."""
    return {"check": cell, "hint": hint}


LOSS, EMA, COLLAPSE, HEAD, CROP = "test_dino_loss", "test_ema", "test_collapse", "test_dino_head", "test_multicrop"

BUGS = {
    "same-view pairs included": Variant(dino_loss(same_view=True), LOSS, **at(LOSS, "the same student view too")),
    "centering the student instead of the teacher": Variant(
        dino_loss(center_student=True), LOSS, **at(LOSS, "subtracting the center from the student")),
    "center updated before the loss": Variant(dino_loss(update_first=True), LOSS,
                                              **at(LOSS, "updating the center before computing the loss")),
    "gradient flows into the teacher": Variant(dino_loss(no_detach=True), LOSS, **at(LOSS, ".detach() them")),
    "averaged over 2V terms instead of 2V - 2": Variant(dino_loss(divide_by_all=True), LOSS,
                                                        **at(LOSS, "dividing by 2V instead of the 2V - 2 pairs")),
    "EMA with the momentum swapped": Variant({"ema_update": ema_swapped}, EMA,
                                             **at(EMA, "putting the momentum on the student")),
    "momentum schedule reversed": Variant({"cosine_momentum": cosine_reversed}, EMA,
                                          **at(EMA, "a schedule that runs from final to base")),
    "momentum schedule linear": Variant({"cosine_momentum": cosine_linear}, EMA,
                                        **at(EMA, "a straight line from base to final")),
    "collapse thresholds on K, not log K": Variant({"collapse_state": collapse_state_raw_entropy}, COLLAPSE,
                                                   **at(COLLAPSE, "entropies are in nats")),
    "collapse read from the marginal entropy": Variant(
        {"collapse_state": collapse_state_last_value_marginal}, COLLAPSE, **at(COLLAPSE, "the two entropies are equal")),
    "head without the L2 bottleneck": Variant(dino_head(no_l2=True), HEAD,
                                              **at(HEAD, "leaving out the L2 normalisation of the bottleneck")),
    "head with the weight-norm scale g trained": Variant(dino_head(train_g=True), HEAD,
                                                         **at(HEAD, "magnitudes g (original0) are trained")),
    "multi-crop with global and local scales swapped": Variant(multicrop_scales_swapped, CROP,
                                                               **at(CROP, "global_scale for the global views")),
    "multi-crop without flips": Variant(multicrop(flip_p=0.0), CROP, **at(CROP, "its own RandomHorizontalFlip()")),
    "multi-crop flips every view": Variant(multicrop(flip_p=1.0), CROP, **at(CROP, "its own RandomHorizontalFlip()")),
    "multi-crop: one global crop used twice": Variant(multicrop(reuse_global=True), CROP,
                                                      **at(CROP, "call the crop once per view")),
    "multi-crop: one local crop repeated": Variant(multicrop(reuse_local=True), CROP,
                                                   **at(CROP, "call the crop once per view")),
    "multi-crop: scale arguments ignored": Variant(multicrop(default_scales=True), CROP,
                                                   **at(CROP, "pass global_scale and local_scale on")),
    "head: BatchNorm after the GELU": Variant(head_layers(bn_after_gelu=True), HEAD,
                                              **at(HEAD, "[BatchNorm1d when use_bn], GELU")),
    "head: ReLU instead of GELU": Variant(head_layers(relu=True), HEAD, **at(HEAD, "not ReLU")),
    "head: PyTorch's default initialisation": Variant(head_layers(default_init=True), HEAD,
                                                      **at(HEAD, "trunc_normal_(weight, std=0.02)")),
    "head: last layer with a bias": Variant(head_layers(bias=True), HEAD, **at(HEAD, "bias=False")),
    "head: L2 norm over the batch": Variant(head_layers(normalize_dim0=True), HEAD,
                                            **at(HEAD, "normalising over the batch (dim 0)")),
    "loss: teacher temperature fixed at 0.04": Variant(
        lambda ns: {"DINOLoss": loss_more(ns["DINOLoss"], fixed_teacher_temp=True)}, LOSS,
        **at(LOSS, "a teacher temperature fixed at 0.04")),
    "loss: sum started in a CPU tensor": Variant(
        lambda ns: {"DINOLoss": loss_more(ns["DINOLoss"], cpu_total=True)}, LOSS,
        **at(LOSS, "start a sum from the Python number 0")),
    "center from the student's outputs": Variant(
        lambda ns: {"DINOLoss": loss_more(ns["DINOLoss"], center_from_student=True)}, LOSS,
        **at(LOSS, "averaging the student's outputs")),
    "center from the first global view only": Variant(
        lambda ns: {"DINOLoss": loss_more(ns["DINOLoss"], center_first_view=True)}, LOSS,
        **at(LOSS, "averaging the first global view only")),
    "center momentum on the wrong side": Variant(
        lambda ns: {"DINOLoss": loss_more(ns["DINOLoss"], center_momentum_swapped=True)}, LOSS,
        **at(LOSS, "putting the momentum on the batch mean")),
    "EMA of the weights only": Variant({"ema_update": ema_weights_only}, EMA, **at(EMA, "weights and biases")),
    "momentum schedule ignores final": Variant({"cosine_momentum": cosine_final_ignored}, EMA,
                                               **at(EMA, "a schedule that ends at 1 instead of final")),
    "momentum schedule divides by total_steps - 1": Variant({"cosine_momentum": cosine_off_by_one}, EMA,
                                                            **at(EMA, "final at step total_steps")),
    "collapse read from the last step only": Variant({"collapse_state": collapse_last_step}, COLLAPSE,
                                                     **at(COLLAPSE, "not the last step")),
    "collapse thresholds for K = 64 only": Variant({"collapse_state": collapse_k64}, COLLAPSE,
                                                   **at(COLLAPSE, "fractions of math.log(K), for any K")),
    "collapse: short runs divided by 10": Variant({"collapse_state": collapse_divides_by_ten}, COLLAPSE,
                                                  **at(COLLAPSE, "divide by len(...)")),
    "collapse thresholds on log2 K": Variant({"collapse_state": collapse_log2}, COLLAPSE,
                                             **at(COLLAPSE, "entropies are in nats")),
    "collapse without the constant state": Variant({"collapse_state": collapse_without_constant}, COLLAPSE,
                                                   **at(COLLAPSE, "the two entropies are equal")),
    "collapse: mean of the whole run": Variant({"collapse_state": collapse_whole_run}, COLLAPSE,
                                               **at(COLLAPSE, "not of the whole run")),
    "collapse: equal entropies tested first": Variant({"collapse_state": collapse_equal_first}, COLLAPSE,
                                                      **at(COLLAPSE, "those two first")),
    "multi-crop: one flip per call, before cropping": Variant({"MultiCrop": MultiCropOneFlip}, CROP,
                                                              **at(CROP, "flip each view on its own")),
    "loss: teacher and student temperatures swapped": Variant(
        lambda ns: {"DINOLoss": loss_temps(ns["DINOLoss"], swapped=True)}, LOSS,
        **at(LOSS, "swapping the teacher and student temperatures")),
    "loss: teacher softmax over the batch": Variant(
        lambda ns: {"DINOLoss": loss_temps(ns["DINOLoss"], softmax_over_batch=True)}, LOSS,
        **at(LOSS, "a teacher softmax over the batch (dim 0)")),
    "loss: summed over the batch": Variant(
        lambda ns: {"DINOLoss": loss_temps(ns["DINOLoss"], sum_over_batch=True)}, LOSS,
        **at(LOSS, "summing the cross-entropy over the batch")),
    "EMA outside torch.no_grad()": Variant({"ema_update": ema_without_no_grad}, EMA, **at(EMA, "torch.no_grad()")),
    "loss returned in float64": Variant(lambda ns: {"DINOLoss": loss_float64(ns["DINOLoss"])}, LOSS,
                                        **at(LOSS, "no .double()")),
}
