"""Chapter 5: DINO, self-distillation with no labels.

A student network learns to match, on every other view, what an EMA copy of itself (the teacher)
says about the two global views of the same image. The pieces, with the official defaults of
facebookresearch/dino (``main_dino.py``, ``vision_transformer.py``, ``utils.py``):

- ``MultiCrop``: 2 global crops (224 px, scale 0.4-1) and 8 local crops (96 px, scale 0.05-0.4);
  the teacher sees only the global ones, the student all of them.
- ``DINOHead``: MLP (GELU) to a 256-d bottleneck, L2-normalised, then a weight-normalised linear
  layer to K = out_dim prototypes (65,536 officially). With ``norm_last_layer`` the row norms are
  fixed at 1, so the logits are cosine similarities in [-1, 1].
- ``DINOLoss``: cross-entropy between the centered, sharpened teacher (temperature 0.04, warmed up
  to 0.07 in the improved recipe) and the student (temperature 0.1) over all 2V - 2 pairs of a
  teacher global view and a *different* student view; the center is an EMA (0.9) of the teacher's
  batch mean, updated after the loss.
- ``ema_update`` and ``cosine_momentum``: teacher = m * teacher + (1 - m) * student, with m going
  from 0.996 to 1 on a cosine.

Two collapses threaten: one prototype wins for every image (centering prevents it: it subtracts
the running mean logit), or every prototype gets the same probability (sharpening prevents it: a
low teacher temperature). ``DINOLoss`` reports the diagnostics that tell them apart
(``teacher_entropy``, ``marginal_entropy``, ``kl``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

__all__ = [
    "MultiCrop",
    "DINOHead",
    "DINOLoss",
    "MultiCropWrapper",
    "ema_update",
    "cosine_momentum",
    "teacher_temp_schedule",
    "entropy",
    "random_resized_crops",
    "fast_multicrop",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Multi-crop ------------------------------------------------------------------------------------

class MultiCrop:
    """Multi-crop augmentation: ``2 + num_local`` views of one image.

    ``MultiCrop()(image)`` takes a PIL image or a (C, H, W) tensor (uint8, or float in [0, 1]) and
    returns a list: ``[global_1, global_2, local_1, ..., local_num_local]`` with global views of
    shape (C, global_size, global_size) and local views (C, local_size, local_size), float32.

    As in the official ``DataAugmentationDINO``: each view is a random resized crop (bicubic)
    followed by a horizontal flip (p=0.5) and colour jitter (p=0.8) with random greyscale (p=0.2);
    global view 1 is always blurred, global view 2 rarely (p=0.1) and solarised with p=0.2, local
    views are blurred with p=0.5; then ImageNet normalisation. ``MultiCrop.tiny()`` is the preset for
    the course's 16 px grey digits.
    """

    def __init__(
        self,
        global_size: int = 224,
        local_size: int = 96,
        num_local: int = 8,
        global_scale: tuple[float, float] = (0.4, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.4),
        *,
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
        if local_scale[1] > global_scale[1] or not 0 < global_scale[0] <= global_scale[1] <= 1:
            raise ValueError(
                f"scales must lie in (0, 1] with local below global, got global {global_scale} "
                f"and local {local_scale}: use e.g. (0.4, 1.0) and (0.05, 0.4) as the official code."
            )
        self.global_size, self.local_size, self.num_local = global_size, local_size, num_local
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)

        def view(size: int, scale, blur: float, solarize: float) -> v2.Compose:
            steps: list = [
                v2.ToImage(),
                v2.ToDtype(torch.float32, scale=True),
                v2.RandomResizedCrop(size, scale=scale, interpolation=v2.InterpolationMode.BICUBIC,
                                     antialias=True),
                v2.RandomHorizontalFlip(flip_p),
            ]
            if any(color_jitter) and jitter_p > 0:
                steps.append(v2.RandomApply([v2.ColorJitter(*color_jitter)], p=jitter_p))
            if grayscale_p > 0:
                steps.append(v2.RandomGrayscale(grayscale_p))
            if blur > 0:
                kernel = blur_kernel[0] if size == global_size else blur_kernel[1]
                steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=blur_sigma)], p=blur))
            if solarize > 0:
                steps.append(v2.RandomSolarize(0.5, p=solarize))
            steps.append(v2.Lambda(lambda x: x.clamp(0, 1)))  # bicubic overshoots [0, 1]
            if mean is not None:
                steps.append(v2.Normalize(mean, std))
            return v2.Compose(steps)

        self.global_1 = view(global_size, self.global_scale, blur_p[0], 0.0)
        self.global_2 = view(global_size, self.global_scale, blur_p[1], solarize_p)
        self.local = view(local_size, self.local_scale, blur_p[2], 0.0)

    @classmethod
    def tiny(cls, num_local: int = 4, **overrides) -> "MultiCrop":
        """Preset for the course's 16 px grey digits: 2 global 16 px and ``num_local`` local 8 px.

        Brightness/contrast jitter only (a grey image has no saturation or hue), a light blur with
        a 3 px kernel, no solarisation, no normalisation (pixels stay in [0, 1]). Flips are kept, as
        in the official recipe; digits stay recognisable.
        """
        settings = dict(
            global_size=16, local_size=8, num_local=num_local,
            global_scale=(0.4, 1.0), local_scale=(0.1, 0.4),
            color_jitter=(0.4, 0.4, 0.0, 0.0), grayscale_p=0.0,
            blur_p=(0.5, 0.1, 0.2), blur_sigma=(0.1, 1.0), blur_kernel=(3, 3),
            solarize_p=0.0, mean=None, std=None,
        )
        settings.update(overrides)
        return cls(**settings)

    @property
    def num_views(self) -> int:
        return 2 + self.num_local

    def __call__(self, image) -> list[torch.Tensor]:
        return [self.global_1(image), self.global_2(image)] + [
            self.local(image) for _ in range(self.num_local)
        ]

    def batch(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Views of a batch (B, C, H, W): a list of ``2 + num_local`` tensors (B, C, size, size).

        Every image gets its own random crops (the transforms run image by image).
        """
        per_image = [self(img) for img in images]
        return [torch.stack(views) for views in zip(*per_image)]

    def __repr__(self) -> str:
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
            if m.bias is not None:
                nn.init.zeros_(m.bias)

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
            views = [views]
        feats, start = [], 0
        while start < len(views):
            end = start
            while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
                end += 1
            out = self.backbone(torch.cat(list(views[start:end])))
            if out.ndim != 2:
                raise ValueError(
                    f"the backbone returned shape {tuple(out.shape)}; MultiCropWrapper needs one "
                    "vector per image (B, D): return the CLS token, e.g. forward_features(x)[:, 0]."
                )
            feats.append(out)
            start = end
        return self.head(torch.cat(feats))


# Loss ------------------------------------------------------------------------------------------

def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each distribution along the last dimension."""
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)


def teacher_temp_schedule(step: int, warmup_steps: int, warmup_temp: float = 0.04,
                          final_temp: float = 0.04) -> float:
    """Linear warm-up of the teacher temperature (official: 0.04 -> 0.07 over 30 epochs)."""
    if step >= warmup_steps:
        return final_temp
    return warmup_temp + (final_temp - warmup_temp) * step / max(warmup_steps, 1)


class DINOLoss(nn.Module):
    """The DINO loss over all pairs of a teacher global view and a different student view.

    student_output: (V * B, K), views stacked in crop order (the 2 global views first);
    teacher_output: (2 * B, K), the teacher's logits on the 2 global views.

    teacher probs  q_i = softmax((t_i - center) / teacher_temp), no gradient
    student logp   p_v = log_softmax(s_v / student_temp)
    loss = mean over the 2V - 2 pairs (i, v), v != i, of mean over the batch of -sum_k q_i p_v.

    After the loss, under no_grad, ``center = m * center + (1 - m) * mean(teacher_output)``
    (m = ``center_momentum``; the batch mean is over the 2B teacher rows). ``use_centering=False``
    keeps the center at 0; ``teacher_temp == student_temp`` turns sharpening off.
    ``self.last`` holds the diagnostics of the last call (floats): ``teacher_entropy`` (mean
    per-image entropy of q), ``marginal_entropy`` (entropy of q averaged over the batch),
    ``kl`` (mean KL(q || p) over the pairs), ``loss``.
    """

    center: torch.Tensor

    def __init__(
        self,
        out_dim: int,
        teacher_temp: float = 0.04,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        ncrops: int = 10,
        use_centering: bool = True,
    ) -> None:
        super().__init__()
        self.out_dim, self.ncrops = out_dim, ncrops
        self.teacher_temp, self.student_temp = teacher_temp, student_temp
        self.center_momentum, self.use_centering = center_momentum, use_centering
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.last: dict[str, float] = {}

    def forward(self, student_output: torch.Tensor, teacher_output: torch.Tensor,
                teacher_temp: float | None = None) -> torch.Tensor:
        temp = self.teacher_temp if teacher_temp is None else teacher_temp
        if student_output.shape[0] % self.ncrops or teacher_output.shape[0] * self.ncrops != 2 * student_output.shape[0]:
            raise ValueError(
                f"student_output has {student_output.shape[0]} rows and teacher_output "
                f"{teacher_output.shape[0]}: with ncrops={self.ncrops} they must be ncrops * B and "
                "2 * B (the teacher sees the 2 global views only). Set ncrops to 2 + num_local."
            )
        student = (student_output / self.student_temp).chunk(self.ncrops)
        teacher = F.softmax((teacher_output - self.center) / temp, dim=-1).detach().chunk(2)

        total, pairs, kl = 0.0, 0, 0.0
        for i, q in enumerate(teacher):
            for v, s in enumerate(student):
                if v == i:
                    continue  # never the same view
                logp = F.log_softmax(s, dim=-1)
                ce = torch.sum(-q * logp, dim=-1).mean()
                total = total + ce
                kl += (ce - entropy(q).mean()).item()
                pairs += 1
        loss = total / pairs
        q_all = torch.cat(teacher)
        self.last = {
            "loss": float(loss.detach()),
            "teacher_entropy": float(entropy(q_all).mean()),
            "marginal_entropy": float(entropy(q_all.mean(0))),
            "kl": kl / pairs,
        }
        self.update_center(teacher_output)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """EMA of the teacher's batch mean (the official code all-reduces it across GPUs first)."""
        if not self.use_centering:
            return
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


# Fast batched crops for small images -----------------------------------------------------------

def random_resized_crops(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One random resized crop (+ horizontal flip) per image, for a whole batch at once.

    images: (B, C, H, W) -> (B, C, size, size). Each crop covers a fraction ``scale`` of the image
    area with aspect ratio in ``ratio`` (log-uniform), as ``RandomResizedCrop``, resampled
    bilinearly with one ``grid_sample`` call; much faster than per-image transforms for tiny images.
    """
    B = images.shape[0]
    dev = images.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(B, generator=generator).to(dev)

    area = uniform(*scale)
    log_r = uniform(math.log(ratio[0]), math.log(ratio[1]))
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)  # crop width and height as fractions of the image
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (uniform(0, 1) * (1 - w) + w / 2) * 2 - 1  # crop centre in [-1, 1] coordinates
    cy = (uniform(0, 1) * (1 - h) + h / 2) * 2 - 1
    flip = torch.where(uniform(0, 1) < flip_p, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, [B, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def fast_multicrop(
    images: torch.Tensor,
    num_local: int = 4,
    global_size: int = 16,
    local_size: int = 8,
    global_scale: tuple[float, float] = (0.4, 1.0),
    local_scale: tuple[float, float] = (0.1, 0.4),
    jitter: float = 0.4,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Batched multi-crop for grey images in [0, 1]: 2 global + ``num_local`` local views.

    Each view: ``random_resized_crops`` then per-image brightness and contrast factors drawn from
    [1 - jitter, 1 + jitter]. Returns a list of (B, C, size, size) tensors, global views first.
    """
    views = []
    for i in range(2 + num_local):
        size, scale = (global_size, global_scale) if i < 2 else (local_size, local_scale)
        x = random_resized_crops(images, size, scale, generator=generator)
        if jitter > 0:
            B = x.shape[0]
            b = 1 + jitter * (2 * torch.rand(B, 1, 1, 1, generator=generator) - 1)
            c = 1 + jitter * (2 * torch.rand(B, 1, 1, 1, generator=generator) - 1)
            x = x * b.to(x)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * c.to(x) + mean).clamp(0, 1)
        views.append(x)
    return views
