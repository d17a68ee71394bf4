"""Load timm, torchvision and Hugging Face models into the course's reference models.

``from_timm(model)``, ``from_torchvision(model)`` and ``from_transformers(model)`` read the
configuration from the source model, build the equivalent course model and copy the weights. The
same code loads real pretrained checkpoints (on Colab) and the randomly initialised models the tests use offline.

One module per source: ``vit`` and ``swin`` (timm and torchvision), ``transformers`` (Hugging Face);
``checkpoint`` holds what they share (``load_checked``, ``perturb``).
"""

from __future__ import annotations

from torch import nn

from vitcourse.convert.checkpoint import load_checked, perturb
from vitcourse.convert.swin import swin_from_timm, swin_from_torchvision
from vitcourse.convert.transformers import from_transformers
from vitcourse.convert.vit import vit_from_timm, vit_from_torchvision

__all__ = ["from_timm", "from_torchvision", "from_transformers", "load_checked", "perturb"]


def from_timm(model: nn.Module) -> nn.Module:
    """A course model equal to a timm ViT/DeiT/DINOv2/CLIP/SigLIP (``vitcourse.models.vit.ViT``) or Swin."""
    kind = type(model).__name__
    if kind in ("VisionTransformer", "VisionTransformerDistilled"):
        return vit_from_timm(model)
    if kind == "SwinTransformer":
        return swin_from_timm(model)
    raise TypeError(f"no conversion for timm's {kind}; supported: VisionTransformer(Distilled), SwinTransformer")


def from_torchvision(model: nn.Module) -> nn.Module:
    """A course model equal to torchvision's ``vit_*`` or ``swin_*`` model."""
    kind = type(model).__name__
    if kind == "VisionTransformer":
        return vit_from_torchvision(model)
    if kind == "SwinTransformer":
        return swin_from_torchvision(model)
    raise TypeError(f"no conversion for torchvision's {kind}; supported: VisionTransformer, SwinTransformer")

