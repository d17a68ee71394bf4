"""Load timm, torchvision and Hugging Face models into the course's reference models.

``from_timm(model)``, ``from_torchvision(model)`` and ``from_transformers(model)`` read the
configuration from the source model, build the equivalent course model and copy the weights. The same code loads real pretrained
checkpoints (on Colab) and the randomly initialised models the tests use offline.
"""

from __future__ import annotations

from torch import nn

__all__ = ["from_timm", "from_torchvision", "from_transformers", "load_checked", "perturb"]


def from_timm(model: nn.Module) -> nn.Module:
    """A course model equal to a timm ViT/DeiT/DINOv2/CLIP/SigLIP (``vitcourse.models.vit.ViT``) or Swin."""
    kind = type(model).__name__
    if kind in ("VisionTransformer", "VisionTransformerDistilled"):
        from vitcourse.convert.vit import vit_from_timm

        return vit_from_timm(model)
    if kind == "SwinTransformer":
        from vitcourse.convert.swin import swin_from_timm

        return swin_from_timm(model)
    raise TypeError(f"no conversion for timm's {kind}; supported: VisionTransformer(Distilled), SwinTransformer")


def from_torchvision(model: nn.Module) -> nn.Module:
    """A course model equal to torchvision's ``vit_*`` or ``swin_*`` model."""
    kind = type(model).__name__
    if kind == "VisionTransformer":
        from vitcourse.convert.vit import vit_from_torchvision

        return vit_from_torchvision(model)
    if kind == "SwinTransformer":
        from vitcourse.convert.swin import swin_from_torchvision

        return swin_from_torchvision(model)
    raise TypeError(f"no conversion for torchvision's {kind}; supported: VisionTransformer, SwinTransformer")


def from_transformers(model: nn.Module) -> nn.Module:
    """A course ViT equal to a Hugging Face ``ViTModel``, ``Dinov2Model`` or ``CLIPVisionModel``.

    Only the model object is read (its config and state dict), so the course library does not depend
    on ``transformers``; see ``vitcourse.convert.transformers`` for what is compared.
    """
    from vitcourse.convert.transformers import from_transformers as convert

    return convert(model)


def load_checked(model: nn.Module, state_dict: dict) -> nn.Module:
    """Load ``state_dict`` into ``model`` strictly; the error names the first key that does not fit."""
    own = model.state_dict()
    for key in own:
        if key not in state_dict:
            raise KeyError(f"checkpoint has no entry for {key!r} (expected shape {tuple(own[key].shape)})")
        if tuple(state_dict[key].shape) != tuple(own[key].shape):
            raise ValueError(f"{key!r}: checkpoint shape {tuple(state_dict[key].shape)} does not fit the "
                             f"model's {tuple(own[key].shape)}")
    extra = [k for k in state_dict if k not in own]
    if extra:
        raise KeyError(f"checkpoint entry {extra[0]!r} has no place in the model")
    model.load_state_dict(state_dict)
    return model


def perturb(model: nn.Module, std: float = 0.02, seed: int = 0) -> nn.Module:
    """Add seeded Gaussian noise to every parameter, in place; returns the model in eval mode.

    A randomly initialised model holds exact zeros and ones (biases, LayerNorm, LayerScale) behind which
    a wrong weight mapping can hide; conversions are checked on perturbed models.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g).to(p) * std)
    return model.eval()
