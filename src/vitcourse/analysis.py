"""Looking inside a trained ViT: attention maps and the tokens leaving a block.

Works for the course's ``ViT``, the chapters' own models and timm's ViTs alike: anything with
``blocks`` whose elements have ``norm1`` and ``attn`` (a ``qkv`` Linear to 3 * D laid out as
(3, heads, head_dim), and ``num_heads``), and ``forward_features``.

- ``attention_maps`` and ``cls_attention``: attention probabilities, recomputed from each block's
  input (the fused attention of the forward pass never forms them);
- ``block_tokens``: the tokens leaving a block, e.g. the last one before the final norm (where
  chapter 8 measures token norms; ``vitcourse.models.registers`` finds the outliers).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["attention_maps", "cls_attention", "block_tokens"]


def _block_inputs(model: nn.Module, x: torch.Tensor, indices: list[int]) -> dict[int, torch.Tensor]:
    """Run ``model.forward_features(x)`` and capture the input of the blocks ``indices``."""
    blocks = list(model.blocks)
    captured: dict[int, torch.Tensor] = {}
    handles = [blocks[i].register_forward_pre_hook(lambda mod, args, i=i: captured.__setitem__(i, args[0]))
               for i in indices]
    try:
        with torch.no_grad():
            model.forward_features(x)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def _attention(block: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) of one block for its input h (B, T, D): (B, heads, T, T)."""
    attn = block.attn
    h = block.norm1(h)
    B, T, D = h.shape
    H = attn.num_heads
    q, k, _ = attn.qkv(h).reshape(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4)  # each (B, H, T, D/H)
    if hasattr(attn, "q_norm"):  # timm's optional qk-norm (identity in plain ViTs)
        q, k = attn.q_norm(q), attn.k_norm(k)
    scale = getattr(attn, "scale", (D // H) ** -0.5)
    return ((q * scale) @ k.transpose(-2, -1)).softmax(dim=-1)


@torch.no_grad()
def attention_maps(model: nn.Module, x: torch.Tensor, blocks: list[int] | None = None) -> list[torch.Tensor]:
    """Attention probabilities of every block (or of the ``blocks`` given): a list of (B, heads, T, T).

    Each map is recomputed from the block's input, captured by a hook during ``forward_features``.
    Rows (queries) sum to 1 over the keys.
    """
    n = len(model.blocks)
    indices = [i % n for i in (range(n) if blocks is None else blocks)]
    inputs = _block_inputs(model, x, sorted(set(indices)))
    return [_attention(model.blocks[i], inputs[i]) for i in indices]


def cls_attention(model: nn.Module, x: torch.Tensor, block: int = -1) -> torch.Tensor:
    """Attention of the class token to the patches in one block, on the patch grid: (B, heads, h, w).

    images x (B, C, H, W); the prefix tokens (``model.num_prefix_tokens``, 1 if the model does not
    say) are left out, so the map shows patches only.
    """
    attn = attention_maps(model, x, [block])[0]
    P = model.patch_embed.patch_size
    P = P if isinstance(P, int) else P[0]
    h, w = x.shape[-2] // P, x.shape[-1] // P
    prefix = getattr(model, "num_prefix_tokens", 1)
    return attn[:, :, 0, prefix:].reshape(attn.shape[0], attn.shape[1], h, w)


@torch.no_grad()
def block_tokens(model: nn.Module, x: torch.Tensor, block: int = -1) -> torch.Tensor:
    """The tokens leaving one block (the last by default, i.e. before the final norm): (B, T, D)."""
    captured: dict[str, torch.Tensor] = {}
    handle = list(model.blocks)[block].register_forward_hook(lambda mod, args, out: captured.__setitem__("t", out))
    try:
        model.forward_features(x)
    finally:
        handle.remove()
    return captured["t"]
