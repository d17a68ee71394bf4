"""Chapter 3: the Vision Transformer, in one readable file.

``ViT`` covers the family the course needs with a few switches, named as in timm:

- the original ViT: ``class_token=True, global_pool="token"``;
- mean pooling over patch tokens: ``global_pool="avg"``;
- DeiT: ``distilled=True`` (a distillation token after CLS and a second head);
- DINOv2-style: ``reg_tokens=R`` register tokens, ``no_embed_class=True`` (position embeddings on
  patches only) and ``init_values`` (LayerScale).

Token order inside the model: ``[cls, dist, reg_1 .. reg_R, patch_1 .. patch_N]`` (the prefix tokens
that exist), as in timm. Numerical details that equivalence with timm/torchvision depends on:
qkv reshaped as (B, N, 3, heads, head_dim), LayerNorm eps 1e-6, exact (erf) GELU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.models.patches import PatchEmbed
from vitcourse.models.position import interpolate_pos_embed

__all__ = ["Attention", "Mlp", "LayerScale", "Block", "ViT"]


class Attention(nn.Module):
    """Multi-head self-attention. (B, N, D) -> (B, N, D).

    ``fused=True`` uses ``F.scaled_dot_product_attention``; the explicit path
    softmax(q k^T / sqrt(d)) v runs when the attention map is requested (``return_attn=True``),
    and returns it as (B, heads, N, N).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, fused: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused = fused
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        attn = None
        if self.fused and not return_attn:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, heads, N, N)
            attn = attn.softmax(dim=-1)
            x = attn @ v
        x = self.proj(x.transpose(1, 2).reshape(B, N, D))
        return (x, attn) if return_attn else x


class Mlp(nn.Module):
    """Linear -> GELU -> Linear. (B, N, D) -> (B, N, D)."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel learned scale of a residual branch (CaiT, DINOv2), initialised to ``init_values``."""

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)). (B, N, D) -> (B, N, D)."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
        init_values: float | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        if return_attn:
            y, attn = self.attn(self.norm1(x), return_attn=True)
        else:
            y, attn = self.attn(self.norm1(x)), None
        x = x + self.ls1(y)
        x = x + self.ls2(self.mlp(self.norm2(x)))
        return (x, attn) if return_attn else x


class ViT(nn.Module):
    """Vision Transformer. Images (B, C, H, W) -> logits (B, num_classes).

    ``forward_features`` returns all tokens, (B, T, D) with T = num_prefix_tokens + N, after the final
    norm (with ``global_pool="avg"`` the norm comes after pooling instead, as in timm). Inputs of another size (a multiple of the patch size) are accepted:
    the patch part of the position embedding is resized to the new grid (bicubic, as timm).
    With ``distilled=True`` the model returns ``(cls_logits, dist_logits)`` in training mode and
    their average in eval mode, as DeiT does.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        class_token: bool = True,
        reg_tokens: int = 0,
        distilled: bool = False,
        global_pool: str = "token",
        no_embed_class: bool = False,
        init_values: float | None = None,
    ) -> None:
        super().__init__()
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool={global_pool!r}: use 'token' (CLS) or 'avg' (mean of patch tokens)")
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' reads the class token: set class_token=True or global_pool='avg'")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.no_embed_class = no_embed_class
        self.embed_dim = embed_dim
        self.num_reg_tokens = reg_tokens
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if distilled else None
        self.reg_token = nn.Parameter(torch.zeros(1, reg_tokens, embed_dim)) if reg_tokens else None
        self.num_prefix_tokens = int(class_token) + int(distilled) + reg_tokens
        # Position embeddings cover the prefix tokens too, unless no_embed_class (DINOv2: patches only).
        num_pos = self.patch_embed.num_patches + (0 if no_embed_class else self.num_prefix_tokens)
        self.pos_embed = nn.Parameter(torch.randn(1, num_pos, embed_dim) * 0.02)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, init_values) for _ in range(depth)
        )
        # As in timm: with mean pooling the final norm is applied after pooling (fc_norm).
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6) if global_pool == "token" else nn.Identity()
        self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6) if global_pool == "avg" else nn.Identity()
        self.head = nn.Linear(embed_dim, num_classes) if num_classes else nn.Identity()
        self.head_dist = (nn.Linear(embed_dim, num_classes) if num_classes else nn.Identity()) if distilled else None
        self._init_weights()

    def _init_weights(self) -> None:
        for token in (self.cls_token, self.dist_token, self.reg_token):
            if token is not None:
                nn.init.normal_(token, std=1e-6 if token is self.cls_token else 0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _pos_embed(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Prefix tokens and position embeddings for patch tokens: (B, N, D) -> (B, T, D)."""
        pos = self.pos_embed
        embedded_prefix = 0 if self.no_embed_class else self.num_prefix_tokens
        if grid != self.patch_embed.grid_size:
            pos = interpolate_pos_embed(pos, self.patch_embed.grid_size, grid, embedded_prefix)
        B = x.shape[0]
        prefix = [t.expand(B, -1, -1) for t in (self.cls_token, self.dist_token, self.reg_token) if t is not None]
        if self.no_embed_class:
            return torch.cat(prefix + [x + pos], dim=1)
        return torch.cat(prefix + [x], dim=1) + pos

    def forward_features(self, x: torch.Tensor, return_attn: bool = False):
        """(B, C, H, W) -> tokens (B, T, D) after the final norm.

        With ``return_attn=True`` also returns the attention maps of every block, a list of
        (B, heads, T, T) tensors.
        """
        grid = (x.shape[-2] // self.patch_embed.patch_size, x.shape[-1] // self.patch_embed.patch_size)
        x = self._pos_embed(self.patch_embed(x), grid)
        maps = []
        for block in self.blocks:
            if return_attn:
                x, attn = block(x, return_attn=True)
                maps.append(attn)
            else:
                x = block(x)
        x = self.norm(x)
        return (x, maps) if return_attn else x

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, D): the class token, or the normalised mean of the patch tokens."""
        if self.global_pool == "avg":
            return self.fc_norm(tokens[:, self.num_prefix_tokens:].mean(dim=1))
        return tokens[:, 0]

    def forward_head(self, tokens: torch.Tensor):
        if self.head_dist is not None:
            cls_logits, dist_logits = self.head(tokens[:, 0]), self.head_dist(tokens[:, 1])
            return (cls_logits, dist_logits) if self.training else (cls_logits + dist_logits) / 2
        return self.head(self.pool(tokens))

    def forward(self, x: torch.Tensor):
        return self.forward_head(self.forward_features(x))

    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Attention of every block, a list of (B, heads, T, T), without gradients."""
        with torch.no_grad():
            return self.forward_features(x, return_attn=True)[1]

    def cls_attention(self, x: torch.Tensor, block: int = -1) -> torch.Tensor:
        """Attention of the class token to the patches in one block: (B, heads, h, w)."""
        attn = self.attention_maps(x)[block]
        h, w = x.shape[-2] // self.patch_embed.patch_size, x.shape[-1] // self.patch_embed.patch_size
        return attn[:, :, 0, self.num_prefix_tokens:].reshape(attn.shape[0], attn.shape[1], h, w)
