"""Hugging Face vision encoders -> ``vitcourse.models.vit.ViT``.

Three model classes of ``transformers`` are covered, each read from its own config:

| Hugging Face | what differs from a timm ViT | course ViT options |
| --- | --- | --- |
| ``ViTModel`` | LayerNorm eps 1e-12 (``layer_norm_eps``) | ``norm_eps`` |
| ``Dinov2Model`` | LayerScale (``layer_scale*.lambda1``) | ``init_values`` |
| ``CLIPVisionModel`` | ``pre_layrnorm`` before the blocks, no patch bias, QuickGELU, eps 1e-5 | ``pre_norm``, ``act_layer``, ``norm_eps`` |

What is compared, per model (see ``tests/library/test_convert_transformers.py``):

- ``ViTModel`` and ``Dinov2Model``: ``last_hidden_state`` (every token after the final LayerNorm) equals
  the course ``forward_features``. ``ViTModel``'s pooler (a dense layer and tanh on the class token)
  has no counterpart in the course ViT and is not converted.
- ``CLIPVisionModel``: its ``last_hidden_state`` is taken *before* ``post_layernorm``, and its
  ``pooler_output`` is ``post_layernorm`` of the class token. The course ViT applies that norm to every
  token, so ``forward_features`` equals ``post_layernorm(last_hidden_state)`` and the pooled features
  (``forward`` with ``num_classes=0``) equal ``pooler_output``.

Hugging Face keeps q, k and v as three linear layers; the course ``Attention`` stacks them in one
``qkv`` layer in that order, so their weights are concatenated along the output dimension.

Position embeddings at other resolutions: ``Dinov2Model`` always, and the other two with
``interpolate_pos_encoding=True``, resize the grid with plain bicubic interpolation; the course ViT
resizes like timm (bicubic with antialiasing), so away from the checkpoint's resolution the outputs
differ slightly. At the checkpoint's resolution they agree.
"""

from __future__ import annotations

import torch
from torch import nn

from vitcourse.convert.checkpoint import load_checked
from vitcourse.models.patches import pair
from vitcourse.models.vit import ACT_LAYERS, ViT

SUPPORTED = ("ViTModel", "Dinov2Model", "CLIPVisionModel")



def _check(config, kind: str) -> str:
    """The activation name; raises ValueError naming any option the course ViT cannot reproduce."""
    act = config.hidden_act
    if act not in ACT_LAYERS:
        raise ValueError(f"{kind}: hidden_act={act!r} is not supported; the course ViT has {ACT_LAYERS}")
    if getattr(config, "use_swiglu_ffn", False):
        raise ValueError(f"{kind}: use_swiglu_ffn=True is not supported; the course ViT's MLP is Linear-GELU-Linear")
    patch = config.patch_size
    if not isinstance(patch, int) and patch[0] != patch[1]:
        raise ValueError(f"{kind}: patch_size={patch} is not square; the course PatchEmbed uses square patches")
    return act


def _mlp_ratio(hidden: int, intermediate: int, kind: str) -> float:
    ratio = intermediate / hidden
    if int(hidden * ratio) != intermediate:
        raise ValueError(f"{kind}: intermediate_size={intermediate} is not reproducible as int(hidden_size * mlp_ratio)")
    return ratio


def _blocks(src: dict, prefix: str, depth: int, names: dict) -> dict:
    """Map the per-layer weights of a Hugging Face encoder onto the course ``blocks.i.*`` names."""
    state = {}
    for i in range(depth):
        s, t = f"{prefix}{i}.", f"blocks.{i}."
        attn = s + names["attn"]
        for part in ("weight", "bias"):
            if f"{attn}.q_proj.{part}" in src:  # q, k, v stacked in this order, as the course qkv layer expects
                state[f"{t}attn.qkv.{part}"] = torch.cat([src[f"{attn}.{x}_proj.{part}"] for x in "qkv"], dim=0)
            for a, b in (("out", "attn.proj"), ("norm1", "norm1"), ("norm2", "norm2"),
                         ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")):
                state[f"{t}{b}.{part}"] = src[s + names[a] + f".{part}"]
        for a, b in (("ls1", "ls1.gamma"), ("ls2", "ls2.gamma")):
            if a in names:
                state[t + b] = src[s + names[a]]
    return state


def from_transformers(model: nn.Module) -> ViT:
    """A course ``ViT`` (``num_classes=0``) equal to a Hugging Face ``ViTModel``, ``Dinov2Model`` or
    ``CLIPVisionModel``; the weights are copied. ``transformers`` itself is not imported here."""
    kind = type(model).__name__
    if kind not in SUPPORTED:
        raise TypeError(f"no conversion for transformers' {kind}; supported: {', '.join(SUPPORTED)}")
    config = model.config
    act = _check(config, kind)
    D, depth = config.hidden_size, config.num_hidden_layers
    src = dict(model.state_dict())
    common = dict(img_size=pair(config.image_size), patch_size=pair(config.patch_size)[0], in_chans=config.num_channels,
                  num_classes=0, embed_dim=D, depth=depth, num_heads=config.num_attention_heads,
                  norm_eps=config.layer_norm_eps, act_layer=act)
    if kind == "ViTModel":
        ours = ViT(**common, mlp_ratio=_mlp_ratio(D, config.intermediate_size, kind), qkv_bias=config.qkv_bias)
        names = dict(attn="attention", out="attention.o_proj", norm1="layernorm_before", norm2="layernorm_after",
                     fc1="mlp.fc1", fc2="mlp.fc2")
        state = _blocks(src, "layers.", depth, names)
        patch, final = "embeddings.patch_embeddings.projection", "layernorm"
    elif kind == "Dinov2Model":
        ours = ViT(**common, mlp_ratio=_mlp_ratio(D, int(D * config.mlp_ratio), kind), qkv_bias=config.qkv_bias,
                   init_values=config.layerscale_value)
        names = dict(attn="attention", out="attention.o_proj", norm1="norm1", norm2="norm2", fc1="mlp.fc1",
                     fc2="mlp.fc2", ls1="layer_scale1.lambda1", ls2="layer_scale2.lambda1")
        state = _blocks(src, "encoder.layer.", depth, names)
        patch, final = "embeddings.patch_embeddings.projection", "layernorm"
    else:  # CLIPVisionModel
        ours = ViT(**common, mlp_ratio=_mlp_ratio(D, config.intermediate_size, kind), pre_norm=True)
        names = dict(attn="self_attn", out="self_attn.out_proj", norm1="layer_norm1", norm2="layer_norm2",
                     fc1="mlp.fc1", fc2="mlp.fc2")
        state = _blocks(src, "encoder.layers.", depth, names)
        patch, final = "embeddings.patch_embedding", "post_layernorm"
        state["norm_pre.weight"], state["norm_pre.bias"] = src["pre_layrnorm.weight"], src["pre_layrnorm.bias"]

    if kind == "CLIPVisionModel":
        state["cls_token"] = src["embeddings.class_embedding"].reshape(1, 1, D)  # stored as (D,)
        state["pos_embed"] = src["embeddings.position_embedding.weight"][None]  # nn.Embedding (1 + N, D)
    else:
        state["cls_token"] = src["embeddings.cls_token"]
        state["pos_embed"] = src["embeddings.position_embeddings"]
    state["patch_embed.proj.weight"] = src[f"{patch}.weight"]
    if f"{patch}.bias" in src:
        state["patch_embed.proj.bias"] = src[f"{patch}.bias"]
    state["norm.weight"], state["norm.bias"] = src[f"{final}.weight"], src[f"{final}.bias"]
    return load_checked(ours, state)
