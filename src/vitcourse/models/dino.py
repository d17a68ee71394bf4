"""Chapter 5: DINO, self-distillation with no labels.

A student network learns to match, on every other view, what an EMA copy of itself (the teacher)
says about the two global views of the same image. The pieces, with the official defaults of
facebookresearch/dino (``main_dino.py``, ``vision_transformer.py``, ``utils.py``):

- ``MultiCrop``: 2 global crops (224 px, scale 0.4-1) and 8 local crops (96 px, scale 0.05-0.4) of
  every image, with DINO's colour jitter, greyscale, blur and solarisation; the teacher sees only the
  global ones, the student all of them (``MultiCropWrapper`` runs a backbone and head over the list
  of views).
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

from vitcourse.augment import IMAGENET_MEAN, IMAGENET_STD, gaussian_blur, grey, random_resized_crops

__all__ = ["MultiCrop", "DINOHead", "MultiCropWrapper", "DINOLoss", "teacher_probs", "teacher_temp_schedule",
           "ema_update", "cosine_momentum"]


# Views -----------------------------------------------------------------------------------------

class MultiCrop:
    """DINO's multi-crop views of a batch: 2 global crops and ``num_local`` local crops per image.

    ``MultiCrop(...)(images, generator=None)``: images (B, C, H, W) in [0, 1] -> a list of
    ``2 + num_local`` tensors, the global views (B, C, global_size, global_size) first, then the local
    views (B, C, local_size, local_size). One image (C, H, W) gives views without the batch dimension.

    Each view, as the official ``DataAugmentationDINO``: a random resized crop with a horizontal flip
    (p=0.5); colour jitter (p=0.8) of brightness, contrast, saturation (factors in [1 - s, 1 + s]) and
    hue (shift in [-h, h]); greyscale (p=0.2); Gaussian blur (p=1 for global view 1, 0.1 for global
    view 2, 0.5 for local views; sigma in ``blur_sigma``); solarisation of global view 2 (p=0.2); then
    normalisation. Two differences from the official code: bilinear resampling (it uses bicubic) and
    a fixed order of the jitter steps (torchvision shuffles it). ``MultiCrop.tiny()`` is the setting
    for the course's 16 px grey digits.
    """

    def __init__(
        self,
        global_size: int = 224,
        local_size: int = 96,
        num_local: int = 8,
        global_scale: tuple[float, float] = (0.4, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.4),
        *,
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: tuple[float, float, float] = (1.0, 0.1, 0.5),
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        blur_kernel: tuple[int, int] = (23, 9),
        solarize_p: float = 0.2,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
    ) -> None:
        if local_scale[1] > global_scale[1] or not 0 < global_scale[0] <= global_scale[1] <= 1:  # not graded in 05-dino: no argument checks
            raise ValueError(
                f"scales must lie in (0, 1] with local below global, got global {global_scale} "
                f"and local {local_scale}: use e.g. (0.4, 1.0) and (0.05, 0.4) as the official code."
            )
        self.global_size, self.local_size, self.num_local = global_size, local_size, num_local
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        self.ratio, self.flip_p, self.color_jitter, self.jitter_p = tuple(ratio), flip_p, tuple(color_jitter), jitter_p
        self.grayscale_p, self.blur_p, self.blur_sigma = grayscale_p, tuple(blur_p), tuple(blur_sigma)
        self.blur_kernel, self.solarize_p, self.mean, self.std = tuple(blur_kernel), solarize_p, mean, std

    @classmethod
    def tiny(cls, num_local: int = 4, **overrides) -> MultiCrop:
        """The setting for 16 px grey digits: 2 global 16 px and ``num_local`` local 8 px views.

        Crops of 40-100 % (global) and 10-40 % (local) of the area, flips, and brightness and
        contrast jitter of +-40 % on every view (a grey image has no saturation or hue); no greyscale,
        blur or solarisation, no normalisation (pixels stay in [0, 1]).
        """
        settings = dict(global_size=16, local_size=8, num_local=num_local, global_scale=(0.4, 1.0),
                        local_scale=(0.1, 0.4), color_jitter=(0.4, 0.4, 0.0, 0.0), jitter_p=1.0,
                        grayscale_p=0.0, blur_p=(0.0, 0.0, 0.0), solarize_p=0.0, mean=None, std=None)
        return cls(**(settings | overrides))

    @property
    def num_views(self) -> int:
        return 2 + self.num_local

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        single = images.ndim == 3
        x = images[None] if single else images
        if x.dtype == torch.uint8:  # not graded in 05-dino: the exercise's images are float
            x = x.float() / 255
        views = [self._view(x, i, generator) for i in range(self.num_views)]
        return [v[0] for v in views] if single else views

    def _view(self, x: torch.Tensor, i: int, g: torch.Generator | None) -> torch.Tensor:
        """View ``i`` (0, 1: global; 2...: local) of every image in the batch."""
        is_global = i < 2
        size, scale = (self.global_size, self.global_scale) if is_global else (self.local_size, self.local_scale)
        x = random_resized_crops(x, size, scale, self.ratio, self.flip_p, generator=g)
        x = self._jitter(x, g)
        B, dev = x.shape[0], x.device
        if self.grayscale_p > 0:  # not graded in 05-dino: its views are cropped and flipped only
            pick = (torch.rand(B, generator=g) < self.grayscale_p).to(dev)[:, None, None, None]
            x = torch.where(pick, grey(x).expand_as(x), x)
        blur_p = self.blur_p[min(i, 2)]
        if blur_p > 0:  # not graded in 05-dino: its views are cropped and flipped only
            pick = (torch.rand(B, generator=g) < blur_p).to(dev)[:, None, None, None]
            low, high = self.blur_sigma
            sigma = low + (high - low) * torch.rand(B, generator=g)
            kernel = min(self.blur_kernel[0 if is_global else 1], 2 * (size // 2) - 1)  # reflect needs pad < size
            x = torch.where(pick, gaussian_blur(x, kernel, sigma), x)
        if i == 1 and self.solarize_p > 0:  # not graded in 05-dino: crops and flips only
            pick = (torch.rand(B, generator=g) < self.solarize_p).to(dev)[:, None, None, None]
            x = torch.where(pick & (x >= 0.5), 1 - x, x)
        if self.mean is not None:  # not graded in 05-dino: its views are not normalised
            mean = torch.tensor(self.mean, dtype=x.dtype, device=dev)[:, None, None]
            x = (x - mean) / torch.tensor(self.std, dtype=x.dtype, device=dev)[:, None, None]
        return x

    def _jitter(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """Brightness, contrast, saturation and hue jitter, each image with its own factors."""
        brightness, contrast, saturation, hue = self.color_jitter
        if not any(self.color_jitter) or self.jitter_p <= 0:
            return x
        B, dev = x.shape[0], x.device
        pick = None if self.jitter_p >= 1 else (torch.rand(B, generator=g) < self.jitter_p).to(dev)
        y = x
        if brightness:  # not graded in 05-dino: its views are cropped and flipped only
            y = y * (1 + brightness * (2 * torch.rand(B, 1, 1, 1, generator=g) - 1)).to(y)
        if contrast:  # not graded in 05-dino: its views are cropped and flipped only
            c = (1 + contrast * (2 * torch.rand(B, 1, 1, 1, generator=g) - 1)).to(y)
            mean = grey(y).mean(dim=(1, 2, 3), keepdim=True)
            y = (y - mean) * c + mean
        y = y.clamp(0, 1)
        if y.shape[1] == 3 and saturation:  # not graded in 05-dino: crops and flips only
            s = (1 + saturation * (2 * torch.rand(B, 1, 1, 1, generator=g) - 1)).to(y)
            luma = grey(y)
            y = ((y - luma) * s + luma).clamp(0, 1)
        if y.shape[1] == 3 and hue:  # not graded in 05-dino: crops and flips only
            from torchvision.transforms.v2.functional import adjust_hue

            shifts = -hue + 2 * hue * torch.rand(B, generator=g)
            y = torch.stack([adjust_hue(img, float(h)) for img, h in zip(y, shifts)])
        return y if pick is None else torch.where(pick[:, None, None, None], y, x)

    def __repr__(self) -> str:  # not graded in 05-dino: not part of the exercise
        return (f"MultiCrop(global_size={self.global_size}, local_size={self.local_size}, "
                f"num_local={self.num_local}, global_scale={self.global_scale}, "
                f"local_scale={self.local_scale})")


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


def teacher_probs(teacher_output: torch.Tensor, center: torch.Tensor, teacher_temp: float) -> torch.Tensor:
    """The teacher's targets: centered, sharpened probabilities ``softmax((t - center) / teacher_temp)``.

    teacher_output (N, K) logits, center (1, K) -> (N, K) probabilities, without gradient.
    """
    return F.softmax((teacher_output - center) / teacher_temp, dim=-1).detach()


class DINOLoss(nn.Module):
    """The DINO loss over all pairs of a teacher global view and a different student view.

    student_output: (V * B, K), views stacked in crop order (the 2 global views first);
    teacher_output: (2 * B, K), the teacher's logits on the 2 global views.

    teacher probs  q_i = softmax((t_i - center) / teacher_temp), no gradient (``teacher_probs``)
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
        teacher = teacher_probs(teacher_output, self.center, temp).chunk(2)

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
