"""Chapter 5 (DINO): different but correct answers, each of which must keep full marks, and the ALTERNATIVES dict."""

import math
import statistics

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torch import nn
from torchvision.transforms import v2

from nbexec import Variant


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
def ema_lerp(student, teacher, momentum):
    """Correct: lerp_ moves the teacher a fraction (1 - m) of the way to the student."""
    for ps, pt in zip(student.parameters(), teacher.parameters()):
        pt.lerp_(ps, 1 - momentum)


def cosine_other_form(step, total_steps, base=0.996, final=1.0):
    """Correct: the same curve written from the start value."""
    return base + (final - base) * (1 - math.cos(math.pi * step / total_steps)) / 2


def collapse_statistics(teacher_entropy, marginal_entropy, K):
    """Correct: statistics.fmean and fractions of log K, the constant state from the gap between the entropies."""
    h, hm = (statistics.fmean(e[-10:]) / math.log(K) for e in (teacher_entropy, marginal_entropy))
    if h < 0.25:
        return "one-hot"
    if h > 0.95:
        return "uniform"
    return "constant" if abs(hm - h) < 0.05 else "healthy"


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
    """Correct: torch for the means, the entropies as fractions of log K, a lookup of thresholds."""
    h, hm = (float(torch.tensor(e[-10:], dtype=torch.float64).mean()) / math.log(K)
             for e in (teacher_entropy, marginal_entropy))
    for state, applies in (("one-hot", h < 0.25), ("uniform", h > 0.95), ("constant", hm < h + 0.05)):
        if applies:
            return state
    return "healthy"


def loss_boolean_mask(base):
    class BooleanMask(base):
        """Correct: every (teacher view, student view) cross-entropy at once, the same-view pairs dropped with a
        boolean mask (``ce[keep]``: a shape that depends on values, which the meta device cannot compute)."""

        def forward(self, student_output, teacher_output):
            V, K = self.ncrops, student_output.shape[-1]
            log_p = F.log_softmax(student_output / self.student_temp, dim=-1).reshape(V, -1, K)
            q = F.softmax((teacher_output - self.center) / self.teacher_temp, dim=-1).detach().reshape(2, -1, K)
            ce = -(q[:, None] * log_p[None]).sum(-1).mean(-1)  # (2, V): mean over the batch
            keep = torch.ones(2, V, dtype=torch.bool, device=ce.device)
            keep[0, 0] = keep[1, 1] = False
            loss = ce[keep].mean()
            self.update_center(teacher_output)
            return loss

    return BooleanMask


ALTERNATIVES = {
    "multi-crop with torchvision.transforms (v1)": Variant({"MultiCrop": MultiCropV1}, "test_multicrop"),
    "head with a loop, apply() and the norm written out": Variant({"DINOHead": HeadExplicit}, "test_dino_head"),
    "loss vectorised over all view pairs": Variant(
        lambda ns: {"DINOLoss": loss_vectorised(ns["DINOLoss"])}, "test_dino_loss", "test_collapse"),
    "loss vectorised, same-view pairs dropped with a boolean mask": Variant(
        lambda ns: {"DINOLoss": loss_boolean_mask(ns["DINOLoss"])}, "test_dino_loss", "test_collapse"),
    "EMA with lerp_ and the schedule from the start value": Variant(
        {"ema_update": ema_lerp, "cosine_momentum": cosine_other_form}, "test_ema"),
    "collapse with statistics.fmean": Variant({"collapse_state": collapse_statistics}, "test_collapse"),
    "multi-crop with the flip drawn by hand": Variant({"MultiCrop": MultiCropManualFlip}, "test_multicrop"),
    "loss with F.cross_entropy on probability targets": Variant(
        lambda ns: {"DINOLoss": loss_soft_cross_entropy(ns["DINOLoss"])}, "test_dino_loss"),
    "EMA on .data": Variant({"ema_update": ema_data}, "test_ema"),
    "EMA with torch._foreach_ and the schedule as sin^2": Variant(
        {"ema_update": ema_foreach, "cosine_momentum": cosine_sin2}, "test_ema"),
    "collapse with a torch mean": Variant({"collapse_state": collapse_tensor}, "test_collapse"),
}
