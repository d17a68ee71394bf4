"""timm and torchvision Swin Transformers -> ``vitcourse.models.swin.SwinTransformer``.

The course model names its parts ``patch_embed`` / ``patch_norm``, ``stages[i][j]`` (blocks) and
``merges[i - 1]`` (patch merging before stage i); both libraries' names are mapped onto these.
"""

from __future__ import annotations

import re

from torch import nn

from vitcourse.convert.checkpoint import load_checked
from vitcourse.models.swin import SwinTransformer


def _config(depths, heads, embed_dim, window, num_classes, img_size, patch_size, mlp_ratio) -> SwinTransformer:
    return SwinTransformer(img_size=img_size, patch_size=patch_size, num_classes=num_classes, embed_dim=embed_dim,
                           depths=tuple(depths), num_heads=tuple(heads), window_size=window, mlp_ratio=mlp_ratio)


def swin_from_timm(model: nn.Module) -> SwinTransformer:
    """Build the course Swin with the configuration of a timm SwinTransformer and copy its weights."""
    stages = list(model.layers)
    depths = [len(s.blocks) for s in stages]
    heads = [s.blocks[0].attn.num_heads for s in stages]
    first = stages[0].blocks[0]
    ours = _config(depths, heads, model.embed_dim, first.window_size[0] if isinstance(first.window_size, tuple) else first.window_size,
                   model.num_classes, model.patch_embed.img_size[0], model.patch_embed.patch_size[0],
                   first.mlp.fc1.out_features / model.embed_dim)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(("relative_position_index", "attn_mask")):
            continue
        key = key.replace("patch_embed.proj.", "patch_embed.").replace("patch_embed.norm.", "patch_norm.")
        key = re.sub(r"^layers\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2.", key)
        key = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"merges.{int(m.group(1)) - 1}.", key)
        key = key.replace("head.fc.", "head.")
        state[key] = value
    return load_checked(ours, state)


def swin_from_torchvision(model: nn.Module) -> SwinTransformer:
    """Build the course Swin with the configuration of a torchvision SwinTransformer (swin_t, ...)."""
    features = list(model.features)
    stages = features[1::2]
    depths = [len(s) for s in stages]
    heads = [s[0].attn.num_heads for s in stages]
    first = stages[0][0]
    embed_dim = features[0][0].out_channels
    ours = _config(depths, heads, embed_dim, first.attn.window_size[0], model.head.out_features, 224,
                   features[0][0].kernel_size[0], first.mlp[0].out_features / embed_dim)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("relative_position_index"):
            continue
        key = key.replace("features.0.0.", "patch_embed.").replace("features.0.2.", "patch_norm.")
        key = re.sub(r"\.mlp\.0\.", ".mlp.fc1.", key)
        key = re.sub(r"\.mlp\.3\.", ".mlp.fc2.", key)
        match = re.match(r"^features\.(\d+)\.(.*)$", key)
        if match:
            index, rest = int(match.group(1)), match.group(2)
            key = f"stages.{(index - 1) // 2}.{rest}" if index % 2 else f"merges.{index // 2 - 1}.{rest}"
        state[key] = value
    return load_checked(ours, state)
