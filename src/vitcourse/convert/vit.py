"""timm and torchvision ViTs -> ``vitcourse.models.vit.ViT``.

The course ViT uses timm's parameter names, so a timm state dict loads as it is; torchvision's
names are mapped one by one (its attention keeps q, k, v stacked in ``in_proj_weight``, the same
layout as timm's ``qkv``).
"""

from __future__ import annotations

from torch import nn

from vitcourse.convert import load_checked
from vitcourse.models.vit import ViT


def vit_from_timm(model: nn.Module) -> ViT:
    """Build a ``ViT`` with the configuration of a timm VisionTransformer(Distilled) and copy its weights."""
    blocks = model.blocks
    block = blocks[0]
    if model.global_pool not in ("token", "avg"):
        raise ValueError(f"global_pool={model.global_pool!r} is not supported (use 'token' or 'avg')")
    for name in ("norm_pre", "attn_pool"):
        if not isinstance(getattr(model, name, None), (nn.Identity, type(None))):
            raise ValueError(f"this timm model has a {name} layer, which the course ViT does not have")
    has_layer_scale = hasattr(getattr(block, "ls1", None), "gamma")  # its values are copied below
    head = model.head if isinstance(model.head, nn.Linear) else None
    ours = ViT(
        img_size=model.patch_embed.img_size,
        patch_size=model.patch_embed.patch_size[0],
        in_chans=model.patch_embed.proj.in_channels,
        num_classes=head.out_features if head is not None else 0,
        embed_dim=model.embed_dim,
        depth=len(blocks),
        num_heads=block.attn.num_heads,
        mlp_ratio=block.mlp.fc1.out_features / model.embed_dim,
        qkv_bias=block.attn.qkv.bias is not None,
        class_token=model.cls_token is not None,
        num_registers=getattr(model, "num_reg_tokens", 0),  # timm's attribute name
        distilled=getattr(model, "dist_token", None) is not None,
        global_pool=model.global_pool,
        no_embed_class=model.no_embed_class,
        init_values=1e-5 if has_layer_scale else None,
    )
    return load_checked(ours, dict(model.state_dict()))


def vit_from_torchvision(model: nn.Module) -> ViT:
    """Build a ``ViT`` with the configuration of a torchvision VisionTransformer and copy its weights."""
    layers = list(model.encoder.layers)
    if len(model.heads) != 1:
        raise ValueError("torchvision ViTs with a representation layer (pre_logits) are not supported")
    D = model.hidden_dim
    ours = ViT(img_size=model.image_size, patch_size=model.patch_size, num_classes=model.num_classes,
               embed_dim=D, depth=len(layers), num_heads=layers[0].num_heads, mlp_ratio=model.mlp_dim / D)
    src = model.state_dict()
    state = {
        "cls_token": src["class_token"],
        "pos_embed": src["encoder.pos_embedding"],
        "patch_embed.proj.weight": src["conv_proj.weight"],
        "patch_embed.proj.bias": src["conv_proj.bias"],
        "norm.weight": src["encoder.ln.weight"],
        "norm.bias": src["encoder.ln.bias"],
        "head.weight": src["heads.head.weight"],
        "head.bias": src["heads.head.bias"],
    }
    for i in range(len(layers)):
        s, t = f"encoder.layers.encoder_layer_{i}.", f"blocks.{i}."
        pairs = {"ln_1": "norm1", "ln_2": "norm2", "self_attention.out_proj": "attn.proj",
                 "mlp.0": "mlp.fc1", "mlp.3": "mlp.fc2"}
        for a, b in pairs.items():
            state[f"{t}{b}.weight"], state[f"{t}{b}.bias"] = src[f"{s}{a}.weight"], src[f"{s}{a}.bias"]
        state[f"{t}attn.qkv.weight"] = src[f"{s}self_attention.in_proj_weight"]
        state[f"{t}attn.qkv.bias"] = src[f"{s}self_attention.in_proj_bias"]
    return load_checked(ours, state)


