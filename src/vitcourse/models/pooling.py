"""Attention pooling: one learned query reads the tokens (SigLIP's "MAP" head, timm's ``AttentionPoolLatent``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttentionPoolLatent"]


class AttentionPoolLatent(nn.Module):
    """Multi-head attention pooling with one learned query. (B, N, D) -> (B, D).

    The learned ``latent`` (1, 1, D) attends over the tokens; the result goes through a projection and
    a residual MLP: y = proj(attn(q(latent), kv(x))); out = y + mlp(norm(y)). Parameter names follow
    timm's ``AttentionPoolLatent`` so its weights load as they are. ``mlp_cls(dim, hidden, act_layer)``
    builds the MLP (the ViT's ``Mlp``).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, norm_eps: float,
                 mlp_cls, act_layer: str = "gelu") -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.latent = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = mlp_cls(dim, int(dim * mlp_ratio), act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q = self.q(self.latent).reshape(1, 1, self.num_heads, self.head_dim).transpose(1, 2)  # (1, heads, 1, hd)
        kv = self.kv(x).reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)  # each (B, heads, N, head_dim)
        y = F.scaled_dot_product_attention(q.expand(B, -1, -1, -1), k, v)  # (B, heads, 1, head_dim)
        y = self.proj(y.transpose(1, 2).reshape(B, 1, D))
        y = y + self.mlp(self.norm(y))
        return y[:, 0]
