"""CLIP, SigLIP and Hugging Face vision towers against the course ViT, with copied weights.

timm models are built with ``pretrained=False`` and every parameter (LayerNorm weights and biases
included) is perturbed, so that no zero or one initialisation can hide a wrong mapping. Hugging Face
models are built from small configs, offline. The tolerance is 1e-5 (max abs difference, fp32).
"""

import pytest
import timm
import torch

from vitcourse.convert import from_timm, from_transformers, load_checked, perturb
from vitcourse.models.vit import ViT

pytestmark = pytest.mark.chapter("09-vlm")


def images(shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# The ViT-B towers keep every option of the named model; only their depth is cut to 3 blocks to keep
# the suite fast (the full 12-block models match too: benchmarks/09_vlm.py --check-towers).
TIMM = [
    ("vit_base_patch16_clip_224", {"depth": 3}),  # pre-norm, LayerNorm eps 1e-5, exact GELU
    ("vit_base_patch16_clip_quickgelu_224", {"depth": 3}),  # the same with QuickGELU (OpenAI's weights)
    ("vit_base_patch16_siglip_224", {"depth": 3}),  # no class token, attention-pooling head
    ("vit_tiny_patch16_224", {"global_pool": "avg", "fc_norm": False}),  # final norm before mean pooling
    ("vit_tiny_patch16_224", {"global_pool": "token", "fc_norm": True}),  # final norm after the CLS token
]


@pytest.mark.parametrize("name,kwargs", TIMM, ids=[f"{n}{'-' + '-'.join(f'{k}={v}' for k, v in kw.items()) if kw else ''}"
                                                    for n, kw in TIMM])
def test_timm_towers_match(name, kwargs):
    torch.manual_seed(0)
    source = perturb(timm.create_model(name, pretrained=False, **kwargs))
    ours = from_timm(source).eval()
    x = images((2, 3, 224, 224))
    with torch.no_grad():
        features = (ours.forward_features(x) - source.forward_features(x)).abs().max().item()
        logits = (ours(x) - source(x)).abs().max().item()
    assert features <= 1e-5 and logits <= 1e-5, f"{name} {kwargs}: features {features:.2e}, logits {logits:.2e}"


def test_timm_clip_options_matter():
    """The comparison can fail: the CLIP tower built with the wrong eps or activation is off by far more than 1e-5."""
    torch.manual_seed(0)
    source = perturb(timm.create_model("vit_base_patch16_clip_quickgelu_224", pretrained=False, depth=2))
    right = dict(img_size=224, patch_size=16, embed_dim=768, depth=2, num_heads=12, num_classes=source.num_classes,
                 pre_norm=True, norm_eps=1e-5, act_layer="quick_gelu")
    x = images((1, 3, 224, 224))
    for wrong in ({"norm_eps": 1e-6}, {"act_layer": "gelu"}):
        ours = load_checked(ViT(**{**right, **wrong}), dict(source.state_dict())).eval()
        with torch.no_grad():
            assert (ours(x) - source(x)).abs().max() > 1e-4, wrong


def test_unsupported_timm_options_are_named():
    for kwargs, word in (({"qk_norm": True}, "qk_norm"), ({"global_pool": "max"}, "global_pool"),
                         ({"final_norm": False}, "final_norm")):
        source = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=1, **kwargs)
        with pytest.raises(ValueError, match=word):
            from_timm(source)


def small(kind):
    transformers = pytest.importorskip("transformers")
    common = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
    if kind == "vit":
        return transformers.ViTModel(transformers.ViTConfig(intermediate_size=96, **common))
    if kind == "dinov2":
        return transformers.Dinov2Model(transformers.Dinov2Config(mlp_ratio=2, **common))
    return transformers.CLIPVisionModel(transformers.CLIPVisionConfig(intermediate_size=96, **common))


@pytest.mark.parametrize("kind", ["vit", "dinov2"])
def test_hf_vit_and_dinov2_match(kind):
    torch.manual_seed(0)
    source = perturb(small(kind))
    ours = from_transformers(source).eval()
    x = images((2, 3, 32, 32))
    with torch.no_grad():
        diff = (ours.forward_features(x) - source(pixel_values=x).last_hidden_state).abs().max().item()
    assert diff <= 1e-5, f"{kind}: last_hidden_state differs by {diff:.2e}"


def test_hf_vit_keeps_its_layer_norm_eps():
    source = small("vit")
    assert source.config.layer_norm_eps == 1e-12
    assert from_transformers(source).blocks[0].norm1.eps == 1e-12


def test_hf_clip_vision_matches():
    """HF's last_hidden_state stops before post_layernorm; its pooler_output is that norm on the CLS token."""
    torch.manual_seed(0)
    source = perturb(small("clip"))
    assert source.config.hidden_act == "quick_gelu"
    ours = from_transformers(source).eval()
    x = images((2, 3, 32, 32))
    with torch.no_grad():
        out = source(pixel_values=x)
        tokens = (ours.forward_features(x) - source.post_layernorm(out.last_hidden_state)).abs().max().item()
        pooled = (ours(x) - out.pooler_output).abs().max().item()
    assert tokens <= 1e-5 and pooled <= 1e-5, f"tokens {tokens:.2e}, pooled {pooled:.2e}"


def test_hf_unsupported_configs_are_named():
    transformers = pytest.importorskip("transformers")
    config = transformers.Dinov2Config(hidden_size=48, num_hidden_layers=1, num_attention_heads=4, image_size=32,
                                       patch_size=8, use_swiglu_ffn=True)
    with pytest.raises(ValueError, match="use_swiglu_ffn"):
        from_transformers(transformers.Dinov2Model(config))
    config = transformers.ViTConfig(hidden_size=48, num_hidden_layers=1, num_attention_heads=4, intermediate_size=96,
                                    image_size=32, patch_size=8, hidden_act="relu")
    with pytest.raises(ValueError, match="hidden_act"):
        from_transformers(transformers.ViTModel(config))
    with pytest.raises(TypeError, match="ViTModel, Dinov2Model, CLIPVisionModel"):
        from_transformers(torch.nn.Linear(2, 2))
