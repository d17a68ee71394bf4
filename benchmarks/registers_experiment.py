"""Registers at CPU scale: does a small ViT park global information in background tokens?

    .venv/bin/python benchmarks/registers_experiment.py --steps 800 --seeds 0 1

Task (needs global information): a 24 x 24 canvas, mostly empty background, holds two 8 x 8
scikit-learn digits at random positions on the 4 px patch grid (6 x 6 = 36 patches; about 8 of them
carry ink). The label says whether the two digits are the same class (half the pairs are). No single
patch can answer; the model must gather both digits and compare them, and the answer is read from
the CLS token. The same ViT (patch 4, DINOv2 convention: position embeddings on patches only) is
trained with R = 0 and R = 4 registers, same seed, data and steps.

Measured on held-out canvases, from the last block's output tokens (before the final norm, as in
Darcet et al.): the norms of background and ink patch tokens, the fraction of background tokens
flagged by ``find_artifact_tokens`` (median + 6 robust standard deviations), and where the CLS token
of the last block attends: background patches, ink patches, registers, itself.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.models.registers import find_artifact_tokens, last_block_attention, split_tokens

CANVAS, PATCH = 24, 4


def make_pairs(n: int, seed: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images (n, 1, 24, 24), labels (n,) 1 = same class, ink mask (n, 36) True on patches with a digit)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    half = len(d.target) // 2
    sl = slice(0, half) if split == "train" else slice(half, None)
    imgs, tgt = torch.tensor(d.images[sl], dtype=torch.float32) / 16.0, d.target[sl]
    by_class = [np.flatnonzero(tgt == c) for c in range(10)]
    rng = np.random.default_rng(seed)
    g = CANVAS // PATCH
    x = torch.zeros(n, 1, CANVAS, CANVAS)
    ink = torch.zeros(n, g, g, dtype=torch.bool)
    y = torch.zeros(n, dtype=torch.long)
    for i in range(n):
        same = rng.random() < 0.5
        c1 = rng.integers(10)
        c2 = c1 if same else (c1 + rng.integers(1, 10)) % 10
        y[i] = int(same)
        placed: list[tuple[int, int]] = []
        for c in (c1, c2):
            while True:  # top-left corner on the patch grid, digits not overlapping
                r, q = rng.integers(0, g - 1, size=2)
                if all(abs(r - a) >= 2 or abs(q - b) >= 2 for a, b in placed):
                    break
            placed.append((r, q))
            x[i, 0, r * PATCH : r * PATCH + 8, q * PATCH : q * PATCH + 8] = imgs[rng.choice(by_class[c])]
            ink[i, r : r + 2, q : q + 2] = True
    return (x - 0.1) / 0.3, y, ink.flatten(1)


def make_vit(R: int, dim: int, depth: int, heads: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    kw = dict(img_size=CANVAS, patch_size=PATCH, in_chans=1, num_classes=2, embed_dim=dim, depth=depth, num_heads=heads,
              reg_tokens=R, no_embed_class=True)
    try:
        from vitcourse.models.vit import ViT

        return ViT(**kw)
    except ImportError:  # before the course's ViT exists: timm's has the same options
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer(**kw)


def last_block_tokens(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Output tokens of the last block, before the final norm: (B, T, D)."""
    got = {}
    h = model.norm.register_forward_pre_hook(lambda m, a: got.__setitem__("t", a[0]))
    with torch.no_grad():
        model.forward_features(x)
    h.remove()
    return got["t"]


def train(model, x, y, steps, lr, seed, batch=64):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        i = torch.randint(0, len(y), (batch,), generator=g)
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def analyse(model, R, x, y, ink) -> dict:
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    tokens = last_block_tokens(model, x)
    _, regs, patches = split_tokens(tokens, R)
    norms = patches.norm(dim=-1)  # (B, N)
    flags = find_artifact_tokens(patches)
    attn = last_block_attention(model, x).mean(1)[:, 0]  # CLS row, averaged over heads: (B, T)
    a_cls, a_reg, a_pat = attn[:, 0], attn[:, 1 : 1 + R].sum(1), attn[:, 1 + R :]
    bg = ~ink
    return {
        "acc": acc,
        "norm_bg": norms[bg].median().item(),
        "norm_ink": norms[ink].median().item(),
        "norm_bg_max": norms[bg].max().item(),
        "flagged_bg": flags[bg].float().mean().item(),
        "flagged_ink": flags[ink].float().mean().item(),
        "reg_norm": regs.norm(dim=-1).median().item() if R else float("nan"),
        "attn_self": a_cls.mean().item(),
        "attn_reg": a_reg.mean().item(),
        "attn_ink": (a_pat * ink).sum(1).mean().item(),
        "attn_bg": (a_pat * bg).sum(1).mean().item(),
        "attn_top_bg": (a_pat * bg).max(1).values.mean().item(),  # the most-attended background patch
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--registers", type=int, nargs="+", default=[0, 4])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--train", type=int, default=4000)
    a = p.parse_args()
    torch.set_num_threads(1)
    print(vars(a))
    for seed in a.seeds:
        xtr, ytr, _ = make_pairs(a.train, seed, "train")
        xte, yte, inkte = make_pairs(1000, seed + 100, "test")
        for R in a.registers:
            t0 = time.perf_counter()
            m = train(make_vit(R, a.dim, a.depth, a.heads, seed), xtr, ytr, a.steps, a.lr, seed)
            r = analyse(m, R, xte, yte, inkte)
            print(f"seed {seed} R={R}: " + " ".join(f"{k} {v:.3f}" for k, v in r.items()) + f" | {time.perf_counter() - t0:.0f}s",
                  flush=True)


if __name__ == "__main__":
    main()
