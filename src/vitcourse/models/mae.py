"""Chapter 6: masked autoencoders (MAE, He et al. 2022).

The encoder, a ViT, sees only a random quarter of the patches (no mask tokens); a small decoder
gets the encoded visible tokens plus one shared, learned mask token at every removed position,
puts them back in image order, and predicts the pixels of every patch. The loss is the mean squared
error on the removed patches only. Conventions follow the official ``models_mae.py``:

- ``random_masking`` keeps ``int(N * (1 - mask_ratio))`` patches per image, chosen by sorting random
  noise; ``mask`` is 1 for a removed patch; ``ids_restore`` undoes the shuffle;
- targets are ``patchify(images)`` (chapter 1's (row, column, channel) order), optionally
  normalised per patch (``norm_pix_loss``; off by default as in the official code, though the paper
  found it better);
- fixed 2D sine-cosine position embeddings (chapter 2) in encoder and decoder.
"""

from __future__ import annotations

import torch
from torch import nn

from vitcourse.models.patches import PatchEmbed, patchify
from vitcourse.models.position import sincos_2d
from vitcourse.models.vit import Block

__all__ = ["random_masking", "mae_loss", "MAELayers", "MAE"]


def random_masking(tokens: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None):
    """Keep a random subset of tokens per sample.

    tokens: (B, N, D). Returns ``visible`` (B, len_keep, D) with len_keep = int(N * (1 - mask_ratio)),
    ``mask`` (B, N) with 1 = removed and 0 = kept, in the original order, and ``ids_restore`` (B, N),
    the permutation that puts shuffled tokens back in order.
    """
    B, N, D = tokens.shape
    len_keep = int(N * (1 - mask_ratio))
    noise = torch.rand(B, N, generator=generator).to(tokens.device)
    ids_shuffle = noise.argsort(dim=1)  # ascending: the smallest noise is kept
    ids_restore = ids_shuffle.argsort(dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    visible = tokens.gather(1, ids_keep[..., None].expand(-1, -1, D))
    mask = torch.ones(B, N, device=tokens.device)
    mask[:, :len_keep] = 0
    mask = mask.gather(1, ids_restore)  # back to image order
    return visible, mask, ids_restore


def mae_loss(pred: torch.Tensor, images: torch.Tensor, mask: torch.Tensor, patch_size: int,
             norm_pix_loss: bool = False) -> torch.Tensor:
    """Mean squared error on the removed patches.

    pred: (B, N, P*P*C) predicted pixels; images: (B, C, H, W); mask: (B, N), 1 = removed.
    With ``norm_pix_loss`` each target patch is normalised by its own mean and variance (eps 1e-6).
    """
    target = patchify(images, patch_size)
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)  # (B, N)
    return (per_patch * mask).sum() / mask.sum()


class MAELayers(nn.Module):
    """Every layer of an MAE, and no forward pass: the skeleton that ``MAE`` (and chapter 6's exercise)
    builds on.

    Encoder: ``patch_embed``, ``cls_token``, a fixed 2D sine-cosine ``pos_embed`` (1, 1 + N, D) whose
    first row (the class token's) is zero, ``blocks``, ``norm``. Decoder: ``decoder_embed`` (D -> D_dec),
    ``mask_token`` (1, 1, D_dec), ``decoder_pos_embed`` (1, 1 + N, D_dec), ``decoder_blocks``,
    ``decoder_norm``, ``decoder_pred`` (D_dec -> P*P*C). The defaults are the course's digits setting: the
    encoder of ``vitcourse.models.vit.DIGITS_VIT`` and a decoder of width 32, depth 2.
    """

    def __init__(self, img_size: int | tuple[int, int] = 16, patch_size: int = 4, in_chans: int = 1,
                 embed_dim: int = 64, depth: int = 4, num_heads: int = 4, decoder_embed_dim: int = 32,
                 decoder_depth: int = 2, decoder_num_heads: int = 4, mlp_ratio: float = 4.0,
                 norm_pix_loss: bool = False) -> None:
        super().__init__()
        self.patch_size, self.norm_pix_loss = patch_size, norm_pix_loss
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        grid = self.patch_embed.grid_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_2d(embed_dim, grid, num_prefix_tokens=1)[None])
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.register_buffer("decoder_pos_embed", sincos_2d(decoder_embed_dim, grid, num_prefix_tokens=1)[None])
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size * patch_size * in_chans)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)


class MAE(MAELayers):
    """Masked autoencoder with a ViT encoder and a light decoder (the layers of ``MAELayers``).

    ``forward(images, mask_ratio)`` returns ``(loss, pred (B, N, P*P*C), mask (B, N))``.
    """

    def forward_encoder(self, images: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None):
        """images -> (latent (B, 1 + len_keep, D), mask (B, N), ids_restore (B, N))."""
        x = self.patch_embed(images) + self.pos_embed[:, 1:]
        x, mask, ids_restore = random_masking(x, mask_ratio, generator)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """(B, 1 + len_keep, D) -> predicted pixels of every patch (B, N, P*P*C)."""
        x = self.decoder_embed(latent)
        B, N = ids_restore.shape
        mask_tokens = self.mask_token.expand(B, N + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)  # visible first, then the removed ones
        patches = patches.gather(1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))  # unshuffle
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward(self, images: torch.Tensor, mask_ratio: float = 0.75, generator: torch.Generator | None = None):
        latent, mask, ids_restore = self.forward_encoder(images, mask_ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return mae_loss(pred, images, mask, self.patch_size, self.norm_pix_loss), pred, mask
