"""Chapter 5 graded tests, checked both ways.

The solution passes every graded cell on 10 seeds; each plausible bug below fails the cell meant to
catch it. (Running the notebooks in a kernel, nbgrader validate and the release sync are in
tests/test_notebooks.py.)
"""

import math
import statistics

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torch import nn
from torchvision.transforms import v2

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


class MultiCropVariant:
    """MultiCrop with one mistake: ``flip_p`` (0 never, 1 always), the same global or local crop reused,
    or the scale arguments ignored in favour of the defaults."""

    flip_p, reuse_global, reuse_local, default_scales = 0.5, False, False, False

    def __init__(self, global_size=224, local_size=96, num_local=8, global_scale=(0.4, 1.0), local_scale=(0.05, 0.4)):
        self.global_size, self.local_size, self.num_local = global_size, local_size, num_local
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        if self.default_scales:
            global_scale, local_scale = (0.4, 1.0), (0.05, 0.4)
        flip = [v2.RandomHorizontalFlip(self.flip_p)]
        self.global_crop = v2.Compose([v2.RandomResizedCrop(global_size, scale=global_scale, antialias=True), *flip])
        self.local_crop = v2.Compose([v2.RandomResizedCrop(local_size, scale=local_scale, antialias=True), *flip])

    def __call__(self, image):
        g = self.global_crop(image)
        views = [g, g if self.reuse_global else self.global_crop(image)]
        if self.reuse_local:
            return views + [self.local_crop(image)] * self.num_local
        return views + [self.local_crop(image) for _ in range(self.num_local)]


def multicrop(**flags):
    return {"MultiCrop": type("MultiCrop", (MultiCropVariant,), flags)}


class MultiCropV1:
    """Correct: the classic torchvision.transforms API, one transform per view kind."""

    def __init__(self, global_size=224, local_size=96, num_local=8, global_scale=(0.4, 1.0), local_scale=(0.05, 0.4)):
        self.global_size, self.local_size, self.num_local = global_size, local_size, num_local
        self.global_scale, self.local_scale = global_scale, local_scale
        self.transforms = {
            "global": T.Compose([T.RandomResizedCrop((global_size, global_size), scale=global_scale, antialias=True),
                                 T.RandomHorizontalFlip(p=0.5)]),
            "local": T.Compose([T.RandomResizedCrop((local_size, local_size), scale=local_scale, antialias=True),
                                T.RandomHorizontalFlip(p=0.5)]),
        }

    def __call__(self, image):
        kinds = ["global"] * 2 + ["local"] * self.num_local
        return [self.transforms[kind](image) for kind in kinds]


def head_layers(*, bn_after_gelu=False, relu=False, default_init=False, bias=False, normalize_dim0=False):
    """A DINOHead with one mistake in its layers, initialisation or normalisation."""

    class Head(nn.Module):
        def __init__(self, in_dim, out_dim, hidden_dim=2048, bottleneck_dim=256, nlayers=3, norm_last_layer=True,
                     use_bn=False):
            super().__init__()
            act = nn.ReLU if relu else nn.GELU
            if nlayers == 1:
                self.mlp = nn.Linear(in_dim, bottleneck_dim)
            else:
                def hidden(d_in):
                    norm = [nn.BatchNorm1d(hidden_dim)] if use_bn else []
                    return [nn.Linear(d_in, hidden_dim), *(([act()] + norm) if bn_after_gelu else (norm + [act()]))]

                layers = hidden(in_dim)
                for _ in range(nlayers - 2):
                    layers += hidden(hidden_dim)
                self.mlp = nn.Sequential(*layers, nn.Linear(hidden_dim, bottleneck_dim))
            if not default_init:
                for m in self.mlp.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.trunc_normal_(m.weight, std=0.02)
                        nn.init.zeros_(m.bias)
            self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=bias))
            g = self.last_layer.parametrizations.weight.original0
            with torch.no_grad():
                g.fill_(1.0)
            g.requires_grad_(not norm_last_layer)

        def forward(self, x):
            return self.last_layer(F.normalize(self.mlp(x), dim=0 if normalize_dim0 else -1))

    return {"DINOHead": Head}


class HeadExplicit(nn.Module):
    """Correct: layers collected in a loop, init by apply(), the L2 norm written out."""

    def __init__(self, in_dim, out_dim, hidden_dim=2048, bottleneck_dim=256, nlayers=3, norm_last_layer=True,
                 use_bn=False):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (max(nlayers, 1) - 1) + [bottleneck_dim]
        layers = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers += [nn.BatchNorm1d(b), nn.GELU()] if use_bn else [nn.GELU()]
        self.mlp = layers[0] if len(layers) == 1 else nn.Sequential(*layers)
        self.apply(self._init)
        self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.parametrizations.weight.original0.data.fill_(1)
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad = False

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.mlp(x)
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.last_layer(x)


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


def loss_vectorised(base):
    class Vectorised(base):
        """Correct: every (teacher view, student view) cross-entropy at once, the same-view pairs masked out."""

        def forward(self, student_output, teacher_output):
            V, B = self.ncrops, teacher_output.shape[0] // 2
            log_p = F.log_softmax(student_output / self.student_temp, dim=-1).reshape(V, B, -1)
            q = F.softmax((teacher_output - self.center) / self.teacher_temp, dim=-1).detach().reshape(2, B, -1)
            ce = -torch.einsum("ibk,vbk->iv", q, log_p) / B  # (2, V): mean over the batch
            keep = torch.ones(2, V, device=ce.device)
            keep[0, 0] = keep[1, 1] = 0
            loss = (ce * keep).sum() / keep.sum()
            self.update_center(teacher_output)
            return loss

        @torch.no_grad()
        def update_center(self, teacher_output):
            m = self.center_momentum
            self.center.copy_(m * self.center + (1 - m) * teacher_output.mean(0, keepdim=True))

    return Vectorised


@torch.no_grad()
def ema_weights_only(student, teacher, momentum):
    """Averages the weights and forgets the biases."""
    for ms, mt in zip(student.modules(), teacher.modules()):
        if isinstance(ms, nn.Linear):
            mt.weight.mul_(momentum).add_(ms.weight, alpha=1 - momentum)


@torch.no_grad()
def ema_lerp(student, teacher, momentum):
    """Correct: lerp_ moves the teacher a fraction (1 - m) of the way to the student."""
    for ps, pt in zip(student.parameters(), teacher.parameters()):
        pt.lerp_(ps, 1 - momentum)


def cosine_final_ignored(step, total_steps, base=0.996, final=1.0):
    return 1.0 - (1.0 - base) * (1 + math.cos(math.pi * step / total_steps)) / 2


def cosine_off_by_one(step, total_steps, base=0.996, final=1.0):
    return final - (final - base) * (1 + math.cos(math.pi * step / max(total_steps - 1, 1))) / 2


def cosine_other_form(step, total_steps, base=0.996, final=1.0):
    """Correct: the same curve written from the start value."""
    return base + (final - base) * (1 - math.cos(math.pi * step / total_steps)) / 2


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


def collapse_statistics(teacher_entropy, marginal_entropy, K):
    """Correct: statistics.fmean and fractions of log K."""
    fraction = statistics.fmean(teacher_entropy[-10:]) / math.log(K)
    if fraction < 0.25:
        return "one-hot"
    return "uniform" if fraction > 0.95 else "healthy"


class MultiCropOneFlip(MultiCropVariant):
    """Flips the image once per call, before cropping: every view of a call shares one flip."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.flip = v2.RandomHorizontalFlip()
        self.global_crop = v2.RandomResizedCrop(self.global_size, scale=self.global_scale, antialias=True)
        self.local_crop = v2.RandomResizedCrop(self.local_size, scale=self.local_scale, antialias=True)

    def __call__(self, image):
        return super().__call__(self.flip(image))


class MultiCropManualFlip:
    """Correct: a v2.RandomResizedCrop per kind, the flip drawn by hand with torch.rand for each view."""

    def __init__(self, global_size=224, local_size=96, num_local=8, global_scale=(0.4, 1.0), local_scale=(0.05, 0.4)):
        self.global_size, self.local_size, self.num_local = global_size, local_size, num_local
        self.global_scale, self.local_scale = global_scale, local_scale
        self.crops = [v2.RandomResizedCrop(global_size, scale=global_scale, antialias=True)] * 2 + \
            [v2.RandomResizedCrop(local_size, scale=local_scale, antialias=True)] * num_local

    def __call__(self, image):
        views = []
        for crop in self.crops:
            view = crop(image)
            if torch.rand(()) < 0.5:
                view = view.flip(-1)
            views.append(view)
        return views


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


def loss_soft_cross_entropy(base):
    class SoftTargets(base):
        """Correct: F.cross_entropy with probability targets, the pairs listed first, the center by lerp_."""

        def forward(self, student_output, teacher_output):
            targets = F.softmax((teacher_output - self.center) / self.teacher_temp, dim=-1).detach().chunk(2)
            logits = (student_output / self.student_temp).chunk(self.ncrops)
            pairs = [(i, v) for i in range(2) for v in range(self.ncrops) if i != v]
            loss = sum(F.cross_entropy(logits[v], targets[i]) for i, v in pairs) / len(pairs)
            with torch.no_grad():
                self.center.lerp_(teacher_output.mean(0, keepdim=True), 1 - self.center_momentum)
            return loss

    return SoftTargets


def ema_without_no_grad(student, teacher, momentum):
    """Forgets torch.no_grad(): the teacher's parameters join the student's autograd graph."""
    for ps, pt in zip(student.parameters(), teacher.parameters()):
        pt.mul_(momentum).add_(ps, alpha=1 - momentum)


def ema_data(student, teacher, momentum):
    """Correct: works on .data (no autograd), new tensors assigned back."""
    for ps, pt in zip(student.parameters(), teacher.parameters()):
        pt.data = momentum * pt.data + (1 - momentum) * ps.data


def ema_foreach(student, teacher, momentum):
    """Correct: the fused torch._foreach_* updates (as DINOv2), inside torch.no_grad()."""
    with torch.no_grad():
        teacher_params, student_params = list(teacher.parameters()), list(student.parameters())
        torch._foreach_mul_(teacher_params, momentum)
        torch._foreach_add_(teacher_params, student_params, alpha=1 - momentum)


def cosine_sin2(step, total_steps, base=0.996, final=1.0):
    """Correct: 1 - cos(x) = 2 sin^2(x / 2)."""
    return base + (final - base) * math.sin(math.pi * step / (2 * total_steps)) ** 2


def collapse_tensor(teacher_entropy, marginal_entropy, K):
    """Correct: torch for the mean, the entropy as a fraction of log K."""
    fraction = float(torch.tensor(teacher_entropy[-10:], dtype=torch.float64).mean()) / math.log(K)
    return "one-hot" if fraction < 0.25 else "uniform" if fraction > 0.95 else "healthy"


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

ALTERNATIVES = {
    "multi-crop with torchvision.transforms (v1)": Variant({"MultiCrop": MultiCropV1}, "test_multicrop"),
    "head with a loop, apply() and the norm written out": Variant({"DINOHead": HeadExplicit}, "test_dino_head"),
    "loss vectorised over all view pairs": Variant(
        lambda ns: {"DINOLoss": loss_vectorised(ns["DINOLoss"])}, "test_dino_loss", "test_center"),
    "EMA with lerp_ and the schedule from the start value": Variant(
        {"ema_update": ema_lerp, "cosine_momentum": cosine_other_form}, "test_ema"),
    "collapse with statistics.fmean": Variant({"collapse_state": collapse_statistics}, "test_collapse"),
    "multi-crop with the flip drawn by hand": Variant({"MultiCrop": MultiCropManualFlip}, "test_multicrop"),
    "loss with F.cross_entropy on probability targets": Variant(
        lambda ns: {"DINOLoss": loss_soft_cross_entropy(ns["DINOLoss"])}, "test_dino_loss", "test_center"),
    "EMA on .data": Variant({"ema_update": ema_data}, "test_ema"),
    "EMA with torch._foreach_ and the schedule as sin^2": Variant(
        {"ema_update": ema_foreach, "cosine_momentum": cosine_sin2}, "test_ema"),
    "collapse with a torch mean": Variant({"collapse_state": collapse_tensor}, "test_collapse"),
}


def test_healthy_regime_beats_random_init_in_knn(run):
    """The section-6 experiment ran in the solution: pretrained features beat random init clearly."""
    ns = run.namespace
    accs = {}
    for name, net in (("random", ns["run"].initial), ("dino", ns["run"].teacher.backbone)):
        ftr, fte = ns["features"](net, ns["train_x"]), ns["features"](net, ns["test_x"])
        accs[name] = ns["few_shot_accuracy"](ftr, ns["train_y"], fte, ns["test_y"], 1)
    assert accs["dino"] > accs["random"] + 0.08, accs
