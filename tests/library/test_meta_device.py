"""Every reference model runs its forward pass on the meta device without mixing devices.

A tensor created on the CPU inside ``forward`` breaks a model on a GPU; with no GPU here, the meta
device and ``devicecheck.on_meta`` find it (see tests/devicecheck.py). The models are those the
registry's chapter modules define: a module class without an example below fails the test, so a new
model cannot escape the check.
"""

import importlib
import inspect

import pytest
import torch
from torch import nn

from authoring import registry
from vitcourse.models import deit, dino, mae, patches, swin, vit, vlm, vlm_train

from devicecheck import DeviceMismatch, on_meta

x = lambda *shape: torch.randn(*shape)


def _examples():
    """(name, module, args): at least one forward pass of every reference model."""
    tiny = dict(img_size=16, patch_size=4, in_chans=1, num_classes=10, embed_dim=16, depth=2, num_heads=2)
    teacher = deit.SmallCNN(1, 10)
    yield "PatchEmbed", patches.PatchEmbed(32, 8, 3, 16), (x(2, 3, 32, 32),)
    yield "Attention", vit.Attention(16, 4), (x(2, 5, 16),)
    yield "Attention (explicit)", vit.Attention(16, 4, fused=False), (x(2, 5, 16),)
    yield "Mlp", vit.Mlp(16, 32), (x(2, 5, 16),)
    yield "LayerScale", vit.LayerScale(16), (x(2, 5, 16),)
    yield "QuickGELU", vit.QuickGELU(), (x(2, 5, 16),)
    yield "Block", vit.Block(16, 4, init_values=1e-5), (x(2, 5, 16),)
    yield "ViT", vit.ViT(**tiny), (x(2, 1, 16, 16),)
    yield "ViT (other input size)", vit.ViT(**tiny), (x(2, 1, 24, 20),)
    yield "ViT (registers, mean pooling)", vit.ViT(**tiny, num_registers=4, global_pool="avg",
                                                   no_embed_class=True), (x(2, 1, 16, 16),)
    yield "ViT (attention pooling)", vit.ViT(**tiny, global_pool="map"), (x(2, 1, 16, 16),)
    yield "ViT (distilled, training)", vit.ViT(**tiny, distilled=True).train(), (x(2, 1, 16, 16),)
    yield "SmallCNN", teacher, (x(2, 1, 16, 16),)
    for kind in deit.KINDS:
        yield (f"DistillationLoss ({kind})", deit.DistillationLoss(nn.CrossEntropyLoss(), teacher, kind=kind),
               (x(4, 1, 16, 16), (x(4, 10), x(4, 10)), torch.randint(0, 10, (4,))))
    yield "DINOHead", dino.DINOHead(16, 32, 24, 8, use_bn=True), (x(4, 16),)
    backbone = vit.ViT(**{**tiny, "num_classes": 0})
    yield "MultiCropWrapper", dino.MultiCropWrapper(backbone, dino.DINOHead(16, 32, 24, 8)), \
        ([x(2, 1, 16, 16), x(2, 1, 16, 16), x(2, 1, 8, 8), x(2, 1, 8, 8)],)
    yield "DINOLoss", dino.DINOLoss(32, ncrops=4), (x(8, 32), x(4, 32))
    yield "MAE", mae.MAE(), (x(2, 1, 16, 16),)
    yield "MAE (normalised pixels)", mae.MAE(norm_pix_loss=True), (x(2, 1, 16, 16), 0.5)
    yield "WindowAttention", swin.WindowAttention(16, 4, 2), (x(8, 16, 16),)
    yield "SwinBlock", swin.SwinBlock(16, 2, window_size=4), (x(2, 8, 8, 16),)
    yield "SwinBlock (shifted)", swin.SwinBlock(16, 2, window_size=4, shift_size=2), (x(2, 8, 8, 16),)
    yield "PatchMerging", swin.PatchMerging(16), (x(2, 8, 8, 16),)
    yield "SwinTransformer", swin.SwinTransformer(img_size=64, patch_size=4, embed_dim=16, depths=(2, 2),
                                                  num_heads=(2, 4), window_size=4, num_classes=5), (x(1, 3, 64, 64),)
    tokens = vlm_train.tokenize(["the digit 3", "a 7"])
    yield "TextTower", vlm_train.TextTower(width=16, depth=1), (tokens,)
    yield "TwoTower", vlm_train.make_two_tower(width=16, depth=1, embed_dim=8), (x(2, 1, 16, 16), tokens)
    yield "TwoTower (SigLIP bias)", vlm_train.make_two_tower(width=16, depth=1, embed_dim=8, init_logit_bias=-10.0), \
        (x(2, 1, 16, 16), tokens)
    yield "Projector", vlm.Projector(16, 32), (x(2, 5, 16),)


EXAMPLES = list(_examples())


@pytest.mark.parametrize("name,model,args", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_reference_model_runs_on_the_meta_device(name, model, args):
    model(*args)  # the example itself is valid on the CPU
    assert on_meta(model, *args) is None


def test_every_reference_model_has_an_example():
    checked = {type(model) for _, model, _ in EXAMPLES}
    missing = []
    for chapter in registry.chapters():
        module = importlib.import_module(chapter.module)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__:
                if obj not in checked and obj.forward is not nn.Module.forward:  # layer holders have no forward
                    missing.append(f"{chapter.module}.{name}")
    assert not missing, f"add a meta-device example for {missing} to {__name__}"


class _MaskOnCPU(nn.Module):
    """The mistake the check exists for: a tensor built on the CPU inside forward."""

    def forward(self, x):
        return x.masked_fill(torch.eye(x.shape[-1], dtype=torch.bool), 0.0)


class _IndexOnCPU(nn.Module):
    def forward(self, x):
        ids = torch.randperm(x.shape[1])
        return x.gather(1, ids[None, :, None].expand(x.shape[0], -1, x.shape[2]))  # meta alone accepts this


@pytest.mark.parametrize("model", [_MaskOnCPU(), _IndexOnCPU()], ids=["mask", "gather index"])
def test_a_tensor_made_on_the_cpu_is_caught(model):
    model(torch.randn(2, 4, 4))  # fine on the CPU
    error = on_meta(model, torch.randn(2, 4, 4))
    assert error and error.startswith(DeviceMismatch.__name__), error
    fixed = on_meta(lambda t: t.masked_fill(torch.eye(4, dtype=torch.bool, device=t.device), 0.0),
                    torch.randn(2, 4, 4))
    assert fixed is None
