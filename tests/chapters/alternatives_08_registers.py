"""Chapter 8 (registers): different but correct answers, each of which must keep full marks, and the ALTERNATIVES dict."""

import numpy as np
import torch
from einops import repeat

from nbexec import Variant

# Different but correct answers: each must keep full marks -------------------------------------------

def prefix_einops(patch_tokens, pos_embed, cls_token, reg_token, no_embed_class=True):
    """einops.repeat for the batch; with no_embed_class=False the rows of pos_embed added part by part."""
    B, N, _ = patch_tokens.shape
    prefix = torch.cat([cls_token] + ([reg_token] if reg_token is not None else []), dim=1)  # (1, 1+R, D)
    prefix = repeat(prefix, "1 n d -> b n d", b=B)
    if no_embed_class:
        return torch.cat([prefix, patch_tokens + pos_embed], 1)
    P = prefix.shape[1]
    return torch.cat([prefix + pos_embed[:, :P], patch_tokens + pos_embed[:, P:]], 1)


def prefix_filled(patch_tokens, pos_embed, cls_token, reg_token, no_embed_class=True):
    """One output tensor made with new_empty (on the inputs' device), filled slice by slice."""
    B, N, D = patch_tokens.shape
    R = 0 if reg_token is None else reg_token.shape[1]
    out = patch_tokens.new_empty(B, 1 + R + N, D)
    out[:, :1] = cls_token
    if R:
        out[:, 1:1 + R] = reg_token
    out[:, 1 + R:] = patch_tokens
    if no_embed_class:
        out[:, 1 + R:] += pos_embed
        return out
    return out + pos_embed


def split_with_torch_split(tokens, num_registers):
    N = tokens.shape[1] - 1 - num_registers
    cls, regs, patches = torch.split(tokens, [1, num_registers, N], dim=1)
    return cls.squeeze(1), regs, patches


def pool_by_sum(tokens, global_pool="token", num_prefix_tokens=1):
    if global_pool == "avg":
        patches = tokens.narrow(1, num_prefix_tokens, tokens.shape[1] - num_prefix_tokens)
        return patches.sum(dim=1) / patches.shape[1]
    if global_pool == "token":
        return tokens[:, 0]
    raise ValueError(f"unknown global_pool {global_pool!r}")


def register_vit_inline(ns):
    """Parameters through torch.empty + nn.init.normal_, the tokens assembled in forward_features itself."""
    base = ns["RegisterViT"]

    class RegisterViT(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            D = self.cls_token.shape[-1]
            R, rows = self.num_registers, self.pos_embed.shape[1]
            self.cls_token = torch.nn.Parameter(torch.nn.init.normal_(torch.empty(1, 1, D), std=0.02))
            self.reg_token = torch.nn.Parameter(torch.nn.init.normal_(torch.empty(1, R, D), std=0.02)) if R else None
            self.pos_embed = torch.nn.Parameter(torch.nn.init.normal_(torch.empty(1, rows, D), std=0.02))

        def forward_features(self, x):
            x = self.patch_embed(x)
            B = x.shape[0]
            if self.no_embed_class:
                x = x + self.pos_embed
            parts = [self.cls_token.expand(B, -1, -1)]
            if self.reg_token is not None:
                parts.append(self.reg_token.expand(B, -1, -1))
            x = torch.cat(parts + [x], dim=1)
            if not self.no_embed_class:
                x = x + self.pos_embed
            for block in self.blocks:
                x = block(x)
            return self.norm(x)

        def forward(self, x):
            tokens = self.forward_features(x)
            if self.global_pool == "avg":
                return self.head(tokens[:, 1 + self.num_registers:].mean(1))
            return self.head(tokens[:, 0])

    return {"RegisterViT": RegisterViT}


def artifacts_kthvalue(features, threshold=None, k=6.0):
    """The lower median as the ceil(n/2)-th smallest value."""
    norms = features.norm(dim=-1) if features.ndim == 3 else features
    if threshold is None:
        flat = norms.reshape(-1)
        middle = (flat.numel() + 1) // 2
        med = flat.kthvalue(middle).values
        mad = (flat - med).abs().kthvalue(middle).values
        threshold = med + k * 1.4826 * mad
    return norms > threshold


def artifacts_numpy(features, threshold=None, k=6.0):
    """numpy's median (the mean of the two middle values for an even count)."""
    norms = torch.linalg.vector_norm(features, dim=-1) if features.ndim == 3 else features
    if threshold is None:
        values = norms.detach().cpu().numpy().ravel()
        med = np.median(values)
        threshold = float(med + k * 1.4826 * np.median(np.abs(values - med)))
    return norms > threshold


def shares_by_index(attn, num_registers, ink):
    """Head-averaged row 0, then the ink and background columns picked with torch.where per image."""
    row = attn.mean(1)[:, 0]
    R = num_registers
    out = []
    for b in range(row.shape[0]):
        patches = row[b, 1 + R:]
        out.append(torch.stack([row[b, 0], row[b, 1:1 + R].sum(), patches[ink[b]].sum(), patches[~ink[b]].sum()]))
    return torch.stack(out)


def shares_by_einsum(attn, num_registers, ink):
    """A weighted sum of the rows with einsum, over a (B, T, 4) assignment of the tokens to the groups."""
    B, _, T, _ = attn.shape
    R = num_registers
    groups = attn.new_zeros(B, T, 4)
    groups[:, 0, 0] = 1
    groups[:, 1:1 + R, 1] = 1
    groups[:, 1 + R:, 2] = ink.to(attn.dtype)
    groups[:, 1 + R:, 3] = (~ink).to(attn.dtype)
    return torch.einsum("bht,btg->bg", attn[:, :, 0], groups) / attn.shape[1]


ALTERNATIVES = {
    "add_prefix_tokens with einops": Variant({"add_prefix_tokens": prefix_einops}, "test_add_prefix_tokens",
                                             "test_register_vit"),
    "add_prefix_tokens filling new_empty": Variant({"add_prefix_tokens": prefix_filled}, "test_add_prefix_tokens",
                                                   "test_register_vit"),
    "split with torch.split, pool by sum": Variant({"split_tokens": split_with_torch_split, "pool": pool_by_sum},
                                                   "test_split_pool", "test_register_vit"),
    "RegisterViT with normal_ init and inline tokens": Variant(register_vit_inline, "test_register_vit"),
    "artifacts with kthvalue": Variant({"find_artifact_tokens": artifacts_kthvalue}, "test_find_artifact_tokens"),
    "artifacts with numpy's median": Variant({"find_artifact_tokens": artifacts_numpy}, "test_find_artifact_tokens"),
    "attention_shares image by image with boolean masks": Variant({"attention_shares": shares_by_index},
                                                                   "test_attention_shares"),
    "attention_shares with einsum over a group assignment": Variant({"attention_shares": shares_by_einsum},
                                                                     "test_attention_shares"),
}
