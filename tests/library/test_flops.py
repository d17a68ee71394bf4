import pytest
import torch

from vitcourse import flops
from vitcourse.models.vit import ViT

pytestmark = pytest.mark.chapter("01-patches")  # vit_macs is chapter 1's exercise


@pytest.mark.parametrize("cfg", [
    dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=10),
    dict(img_size=48, patch_size=16, embed_dim=64, depth=1, num_heads=4, num_classes=0),
    dict(img_size=32, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=5, class_token=False, global_pool="avg"),
    dict(img_size=28, patch_size=14, embed_dim=32, depth=2, num_heads=2, num_classes=7, num_registers=4, mlp_ratio=3.0),
])
def test_analytic_equals_measured(cfg):
    model = ViT(**cfg)
    analytic = flops.vit_macs(cfg["img_size"], cfg["patch_size"], cfg["embed_dim"], cfg["depth"],
                              cfg.get("mlp_ratio", 4.0), cfg["num_classes"],
                              class_token=cfg.get("class_token", True), num_registers=cfg.get("num_registers", 0))
    assert analytic["total"] == flops.measured_macs(model, (1, 3, cfg["img_size"], cfg["img_size"]))


def test_measured_counts_fused_attention_and_leaves_model_alone():
    model = ViT(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=0)
    assert model.blocks[0].attn.fused
    flops.measured_macs(model, (1, 3, 32, 32))
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("name,args,gmacs", [
    ("ViT-S/16", (224, 16, 384, 12), 4.60), ("ViT-B/16", (224, 16, 768, 12), 17.56),
    ("ViT-L/14", (224, 14, 1024, 24), 81.01), ("ViT-L/14@336", (336, 14, 1024, 24), 190.96),
    ("ViT-H/14", (224, 14, 1280, 32), 167.30),
])
def test_zoo_numbers(name, args, gmacs):
    assert round(flops.vit_macs(*args)["total"] / 1e9, 2) == gmacs


def test_vit_b_measured_on_meta_device():
    with torch.device("meta"):
        model = ViT(embed_dim=768, depth=12, num_heads=12)
    assert flops.measured_macs(model, (1, 3, 224, 224)) == flops.vit_macs(224, 16, 768, 12)["total"]
    assert 86.5e6 < flops.count_params(model) < 86.6e6


def test_format_count():
    assert flops.format_count(4.6e9) == "4.60 G"
    assert flops.format_count(22_050_000) == "22.05 M"
    assert flops.format_count(12) == "12"
