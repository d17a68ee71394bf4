"""timm and torchvision ViTs -> ``vitcourse.models.vit.ViT``.

The course ViT uses timm's parameter names, so a timm state dict loads as it is; torchvision's
names are mapped one by one (its attention keeps q, k, v stacked in ``in_proj_weight``, the same
layout as timm's ``qkv``).
"""

from __future__ import annotations

from torch import nn

from vitcourse.convert.checkpoint import load_checked
from vitcourse.models.vit import ViT


def _timm_options(model: nn.Module) -> dict:
    """The course ViT options that reproduce a timm VisionTransformer; unsupported layers raise ValueError."""
    block = model.blocks[0]
    if model.global_pool not in ("token", "avg", "map"):
        raise ValueError(f"global_pool={model.global_pool!r} is not supported (use 'token', 'avg' or 'map')")
    if getattr(model, "pos_embed", None) is None:
        raise ValueError("this timm model has no learned position embedding (pos_embed=''), which the course ViT needs")
    if getattr(model, "pool_include_prefix", False):
        raise ValueError("pool_include_prefix=True is not supported: the course ViT pools patch tokens only")
    for name, layer in (("qk_norm", getattr(block.attn, "q_norm", None)), ("scale_attn_norm", getattr(block.attn, "norm", None)),
                        ("scale_mlp_norm", getattr(block.mlp, "norm", None)), ("embed_norm_layer", model.patch_embed.norm)):
        if not isinstance(layer, (nn.Identity, type(None))):
            raise ValueError(f"this timm model uses {name}, which the course ViT does not have")
    if block.attn.proj.bias is None:
        raise ValueError("proj_bias=False is not supported by the course ViT")
    use_fc_norm = not isinstance(model.fc_norm, nn.Identity)
    final = model.fc_norm if use_fc_norm else model.norm
    if not isinstance(final, nn.LayerNorm):
        raise ValueError("final_norm=False (no LayerNorm after the blocks) is not supported by the course ViT")
    act = block.mlp.act
    if isinstance(act, nn.GELU) and act.approximate == "none":
        act_layer = "gelu"
    elif type(act).__name__ == "QuickGELU":
        act_layer = "quick_gelu"
    else:
        raise ValueError(f"activation {act!r} is not supported (use exact GELU or QuickGELU)")
    pool = getattr(model, "attn_pool", None)
    if model.global_pool == "map" and (
            pool.latent.shape[1] != 1 or pool.pos_embed is not None or pool.mlp is None or pool.pool != "token"
            or not isinstance(pool.q, nn.Linear) or not isinstance(pool.k_norm, nn.Identity)):
        raise ValueError("only the standard attention-pooling head (one latent query, with q projection and "
                             "MLP, no position embedding or qk_norm) is supported")
    return dict(
        pre_norm=not isinstance(model.norm_pre, nn.Identity),
        fc_norm=use_fc_norm,
        norm_eps=final.eps,
        act_layer=act_layer,
        init_values=1e-5 if hasattr(getattr(block, "ls1", None), "gamma") else None,  # gamma is copied below
    )


def vit_from_timm(model: nn.Module) -> ViT:
    """Build a ``ViT`` with the configuration of a timm VisionTransformer(Distilled) and copy its weights.

    Covers timm's ViT, DeiT, DINOv2 (registers, LayerScale), CLIP (``pre_norm``, QuickGELU, LayerNorm
    eps 1e-5) and SigLIP (no class token, ``global_pool='map'``) image towers, and any ``fc_norm`` choice.
    """
    blocks = model.blocks
    block = blocks[0]
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
        **_timm_options(model),
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


