"""The course ViT against timm and torchvision with copied weights (random init, perturbed).

Weights are perturbed away from their initial values (seeded), so that a wrong mapping — a zero
bias, a LayerScale of 1, a swapped q/k — cannot hide behind a symmetric initialisation.
"""

import pytest
import timm
import torch
import torchvision

from vitcourse.convert import from_timm, from_torchvision, load_checked, perturb
from vitcourse.models.vit import ViT

TIMM = [
    ("vit_tiny_patch16_224", {}),
    ("vit_small_patch16_224", {}),
    ("deit_tiny_distilled_patch16_224", {}),
    ("vit_small_patch14_reg4_dinov2", {"img_size": 224}),
    ("vit_tiny_patch16_224", {"global_pool": "avg", "class_token": False}),
]


@pytest.mark.parametrize("name,kwargs", TIMM, ids=[f"{n}{'-' + '-'.join(k) if k else ''}" for n, k in TIMM])
def test_from_timm_matches(name, kwargs):
    torch.manual_seed(0)
    source = perturb(timm.create_model(name, pretrained=False, **kwargs))
    ours = from_timm(source).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x) - source(x)).abs().max().item()
    assert diff <= 1e-5, f"{name}: max abs logit difference {diff:.2e}"


def test_from_torchvision_matches():
    torch.manual_seed(0)
    source = perturb(torchvision.models.vit_b_16(weights=None))
    ours = from_torchvision(source).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x) - source(x)).abs().max().item()
    assert diff <= 1e-5, f"vit_b_16: max abs logit difference {diff:.2e}"


def test_other_resolution_matches_timm_dynamic_size():
    source = perturb(timm.create_model("vit_tiny_patch16_224", pretrained=False, dynamic_img_size=True))
    ours = from_timm(source).eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        assert (ours(x) - source(x)).abs().max() <= 1e-5


def test_mismatching_checkpoint_names_the_key():
    model = ViT(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=10)
    state = model.state_dict()
    bad = dict(state, **{"blocks.0.attn.qkv.weight": torch.zeros(90, 32)})
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.qkv\.weight.*\(90, 32\).*\(96, 32\)"):
        load_checked(model, bad)
    missing = {k: v for k, v in state.items() if k != "pos_embed"}
    with pytest.raises(KeyError, match="pos_embed"):
        load_checked(model, missing)
    with pytest.raises(KeyError, match="extra.weight"):
        load_checked(model, dict(state, **{"extra.weight": torch.zeros(1)}))


def test_unsupported_models_are_named():
    with pytest.raises(TypeError, match="ResNet"):
        from_timm(timm.create_model("resnet18", pretrained=False))
