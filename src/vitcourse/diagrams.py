"""Schematics of the architectures, drawn with matplotlib from the models' own configuration.

One function per architecture; each takes a model (or the parts that define the picture) and reads
its numbers from it: token counts, widths, depths, crop sizes, temperatures. Build the model on the
``meta`` device to draw a large one without allocating memory. Every function returns the Figure.

    vit_pipeline(model)          image -> patches -> tokens (+ class token, + positions) -> encoder -> head
    encoder_block(block)         post-norm (Transformer, BERT) next to pre-norm (ViT) with the block's sizes
    deit_tokens(model)           the class and distillation tokens and their two heads
    dino_loop(crops, loss)       multi-crop views, student and teacher, centering/sharpening, EMA
    mae_flow(model, ratio)       masking, encoder on visible patches, decoder with mask tokens
    swin_windows(block, grid)    regular windows, shifted windows, the rolled map and its mask regions
    register_tokens(model)       class token, registers and patches, and which of them get a position
    contrastive_targets(batch)   two towers, the similarity matrix, CLIP's and SigLIP's targets
    llava_path(vision, proj)     LLaVA-1.5: pixels to patch tokens to the prompt the language model reads
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyBboxPatch, Rectangle

from vitcourse.models.vit import PREFIX_TOKENS

__all__ = ["vit_pipeline", "encoder_block", "deit_tokens", "dino_loop", "mae_flow", "swin_windows",
           "register_tokens", "contrastive_targets", "llava_path"]

COLORS = {"cls": "#f4a261", "dist": "#e76f51", "patch": "#8ecae6", "reg": "#b5a1d8", "pos": "#e9c46a",
          "mask": "#d9d9d9", "block": "#e0f0e3", "norm": "#fde2b3", "head": "#f6c1c7", "teacher": "#ffe8c2",
          "student": "#d4ecf7", "loss": "#f6c1c7"}


# ---- drawing primitives (coordinates in data units on an axis-free canvas) ----

def _canvas(width: float, height: float, title: str | None = None, scale: float = 0.62):
    fig, ax = plt.subplots(figsize=(width * scale, height * scale))
    ax.set_xlim(0, width), ax.set_ylim(0, height), ax.set_aspect("equal"), ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return fig, ax


def _box(ax, x, y, w, h, text, color="white", fontsize=8.5, **kw):
    """A rounded box with its lower-left corner at (x, y); returns its centre."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.12", fc=color, ec="#333",
                                lw=kw.pop("lw", 0.9), ls=kw.pop("ls", "-")))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, **kw)
    return x + w / 2, y + h / 2


def _arrow(ax, start, end, text=None, color="#333", dashed=False, fontsize=7.5, offset=(0.08, 0.0), **kw):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=color, lw=1.0,
                                                         ls="--" if dashed else "-", shrinkA=1, shrinkB=1, **kw))
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text, fontsize=fontsize,
                color=color, ha="left" if offset[0] >= 0 else "right", va="center")


def _tokens(ax, x, y, kinds, labels=None, size=0.55, gap=0.08, marks=None):
    """A row of token squares of the given kinds ('cls', 'patch', '...', ...); returns their centres."""
    centres = []
    for i, kind in enumerate(kinds):
        cx = x + i * (size + gap)
        if kind == "...":
            ax.text(cx + size / 2, y + size / 2, "…", ha="center", va="center", fontsize=10)
        else:
            ax.add_patch(Rectangle((cx, y), size, size, fc=COLORS[kind], ec="#333", lw=0.8))
            if labels and labels[i]:
                ax.text(cx + size / 2, y + size / 2, labels[i], ha="center", va="center", fontsize=7.5)
            if marks and marks[i]:
                ax.text(cx + size / 2, y + size + 0.12, marks[i], ha="center", va="bottom", fontsize=7.5, color="#8a5a00")
        centres.append((cx + size / 2, y + size / 2))
    return centres


def _row(prefix: list[str], n_patches: int, shown: int = 4):
    """Kinds and labels of a token row: the prefix, the first patches, an ellipsis and the last patch."""
    first = min(shown, n_patches)
    kinds = prefix + ["patch"] * first + (["...", "patch"] if n_patches > first else [])
    labels = [{"cls": "CLS", "dist": "DST", "reg": "R"}.get(k, "") for k in prefix]
    labels += [str(i) for i in range(first)] + (["", str(n_patches - 1)] if n_patches > first else [])
    return kinds, labels


def _prefix(model) -> list[str]:
    """The kinds of the model's prefix tokens, one entry per token, in the course's order."""
    has = lambda name: getattr(model, name, None) is not None
    counts = {"cls": has("cls_token"), "dist": has("dist_token"),
              "reg": model.reg_token.shape[1] if has("reg_token") else 0}
    return [kind for kind in PREFIX_TOKENS for _ in range(counts[kind])]


# ---- the schematics ----

def vit_pipeline(model):
    """From pixels to logits, with the model's patch size, token count, width, depth and classes."""
    pe = model.patch_embed
    (gh, gw), P, C = pe.grid_size, pe.patch_size, pe.proj.in_channels
    N, D, L = pe.num_patches, model.embed_dim, len(model.blocks)
    prefix = _prefix(model)
    kinds, labels = _row(prefix, N)
    right = 4.5 + len(kinds) * 0.63 + 0.1
    fig, ax = _canvas(right + 8.0, 5.2, f"ViT: {pe.img_size[0]}×{pe.img_size[1]} image, patch {P}, "
                                        f"{len(prefix) + N} tokens of width {D}")
    ax.add_patch(Rectangle((0.2, 1.2), 3.0, 3.0, fc="#cfe3c0", ec="#333"))
    for i in range(1, gh):
        ax.plot([0.2, 3.2], [1.2 + 3.0 * i / gh] * 2, color="white", lw=0.6)
    for j in range(1, gw):
        ax.plot([0.2 + 3.0 * j / gw] * 2, [1.2, 4.2], color="white", lw=0.6)
    ax.text(1.7, 0.75, f"{gh}×{gw} = {N} patches\nof {P}×{P}×{C} = {P * P * C} values", ha="center", va="top",
            fontsize=7.5)
    _arrow(ax, (3.35, 2.7), (4.35, 2.7))
    ax.text(3.85, 3.05, f"linear E\n{P * P * C}→{D}", ha="center", fontsize=7.5)
    _tokens(ax, 4.5, 2.4, kinds, labels)
    ax.text((4.5 + right) / 2, 1.75, f"+ position embedding: {model.pos_embed.shape[1]} rows", ha="center",
            fontsize=7.5, color="#8a5a00")
    _arrow(ax, (right + 0.1, 2.7), (right + 0.85, 2.7))
    _box(ax, right + 0.9, 1.6, 3.0, 2.2, f"encoder\n{L} × pre-norm block\n{len(prefix) + N} × {D}", COLORS["block"])
    _arrow(ax, (right + 3.95, 2.7), (right + 4.65, 2.7))
    reads = "class token" if model.global_pool == "token" else "mean of patches"
    head = getattr(model.head, "out_features", 0)
    _box(ax, right + 4.7, 1.9, 3.1, 1.6, f"LayerNorm, then\nhead on the {reads}\n{D} → {head or 'features'}",
         COLORS["head"])
    return fig


def encoder_block(block):
    """The original Transformer's post-norm block next to ViT's pre-norm block, sized from ``block``."""
    D, heads, hidden = block.norm1.normalized_shape[0], block.attn.num_heads, block.mlp.fc1.out_features
    attn, mlp, norm = (f"attention, {heads} heads", COLORS["block"]), (f"MLP {D}→{hidden}→{D}", COLORS["block"]), \
        ("LayerNorm", COLORS["norm"])
    layouts = [(0.3, "post-norm: Transformer, BERT", ["split", attn, "+", norm, "split", mlp, "+", norm],
                "a LayerNorm sits on the residual path\nafter every sub-layer", "#a33"),
               (6.6, "pre-norm: ViT", ["split", norm, attn, "+", "split", norm, mlp, "+", norm],
                "the residual path is a sum of identities;\none final LayerNorm after the last block", "#2a7")]
    fig, ax = _canvas(12.6, 8.0, f"one block of width {D}: {heads} heads of {D // heads}, MLP {D}→{hidden}→{D}")
    for x0, title, steps, note, tone in layouts:
        cx = x0 + 2.7
        ax.text(cx, 7.6, title, ha="center", fontsize=9, weight="bold")
        ax.text(cx, 7.3, note, ha="center", va="top", fontsize=7.5, color=tone)
        _box(ax, x0 + 1.3, 0.2, 2.8, 0.55, f"x: tokens × {D}")
        y, split = 0.75, None
        for i, step in enumerate(steps):
            if step == "split":
                split = y + 0.1
                continue
            final = step is norm and i == len(steps) - 1 and x0 > 1  # pre-norm: once, after the last block
            _arrow(ax, (cx, y), (cx, y + 0.3))
            if step == "+":
                ax.add_patch(plt.Circle((cx, y + 0.52), 0.22, fc="white", ec="#333"))
                ax.text(cx, y + 0.52, "+", ha="center", va="center", fontsize=10)
                ax.plot([cx, x0 + 0.9, x0 + 0.9], [split, split, y + 0.52], color="#2a7", lw=1.0)
                _arrow(ax, (x0 + 0.9, y + 0.52), (cx - 0.23, y + 0.52), color="#2a7")
                y += 0.74
            else:
                _box(ax, x0 + 1.3, y + 0.3, 2.8, 0.55, "final LayerNorm" if final else step[0], step[1],
                     ls="--" if final else "-")
                y += 0.85
    return fig


def deit_tokens(model):
    """DeiT: class and distillation tokens in front of the patches; one head each."""
    if getattr(model, "dist_token", None) is None:
        raise ValueError("deit_tokens draws a distilled model: build it with ViT(..., distilled=True)")
    N, D = model.patch_embed.num_patches, model.embed_dim
    K = getattr(model.head, "out_features", 0)
    fig, ax = _canvas(16.5, 6.4, f"DeiT: {2 + N} tokens (class, distillation, {N} patches), "
                                 f"{model.pos_embed.shape[1]} position rows")
    kinds, labels = _row(["cls", "dist"], N)
    centres = _tokens(ax, 0.4, 0.5, kinds, labels, marks=["+pos"] * len(kinds))
    _box(ax, 0.2, 1.8, 5.6, 1.3, f"encoder: {len(model.blocks)} blocks, width {D}\nevery token attends to every "
                                 "token", COLORS["block"])
    for c in centres[:2]:
        _arrow(ax, (c[0], 1.1), (c[0], 1.75))
    _box(ax, 6.8, 4.0, 3.7, 0.9, f"class head {D}→{K}", COLORS["head"])
    _box(ax, 6.8, 2.4, 3.7, 0.9, f"distillation head {D}→{K}", COLORS["head"])
    _arrow(ax, (centres[0][0], 3.15), (6.75, 4.45))
    _arrow(ax, (centres[1][0], 3.15), (6.75, 2.85))
    _box(ax, 11.0, 4.0, 5.2, 0.9, "cross-entropy with the label y", COLORS["loss"])
    _box(ax, 11.0, 2.3, 5.2, 1.1, "hard: cross-entropy with the teacher's argmax\n"
         "soft: τ² · KL(teacher ‖ student) at τ", COLORS["loss"], fontsize=7.5)
    _arrow(ax, (10.55, 4.45), (10.95, 4.45)), _arrow(ax, (10.55, 2.85), (10.95, 2.85))
    _box(ax, 12.0, 0.3, 3.2, 1.1, "CNN teacher\neval mode, no gradient", COLORS["teacher"])
    _arrow(ax, (13.6, 1.45), (13.6, 2.25))
    ax.text(6.8, 1.0, "in eval mode the model returns\n(class logits + distillation logits) / 2", fontsize=7.5)
    ax.text(11.0, 5.4, "loss = (1 − α) · label term + α · distillation term", fontsize=7.5)
    return fig


def dino_loop(crops, loss):
    """DINO's training step, with the crop sizes of ``crops`` (a MultiCrop) and the temperatures and
    center momentum of ``loss`` (a DINOLoss)."""
    G, n_local = 2, crops.num_local
    V = G + n_local
    fig, ax = _canvas(15, 7.0, f"DINO: {G} global crops ({crops.global_size} px) and {n_local} local crops "
                               f"({crops.local_size} px); {G * (V - 1)} teacher–student pairs per image")
    _box(ax, 0.2, 3.0, 1.6, 1.2, "image", "#cfe3c0")
    xs = [2.6 + 0.75 * i for i in range(V)]
    for i, x in enumerate(xs):
        size = 0.65 if i < G else 0.4
        ax.add_patch(Rectangle((x, 3.6 - size / 2), size, size, fc="#cfe3c0" if i < G else "#e7f2df", ec="#333"))
    ax.text(xs[0] + 0.7, 4.25, "global", fontsize=7.5), ax.text(xs[G] + 0.2, 4.25, "local", fontsize=7.5)
    _arrow(ax, (1.85, 3.6), (2.55, 3.6))
    _box(ax, 3.0, 5.3, 4.0, 1.1, f"teacher: {G} global views\nno gradient (stop-grad)", COLORS["teacher"])
    _box(ax, 3.0, 0.6, 4.0, 1.1, f"student: all {V} views", COLORS["student"])
    _arrow(ax, (xs[0] + 0.3, 3.95), (4.2, 5.25))
    _arrow(ax, (xs[V // 2], 3.3), (5.0, 1.75))
    _box(ax, 8.0, 5.3, 3.6, 1.1, f"center, then sharpen\nsoftmax((t − c) / {loss.teacher_temp:g})", COLORS["norm"])
    _box(ax, 8.0, 0.6, 3.6, 1.1, f"softmax(s / {loss.student_temp:g})", COLORS["norm"])
    _arrow(ax, (7.05, 5.85), (7.95, 5.85)), _arrow(ax, (7.05, 1.15), (7.95, 1.15))
    _box(ax, 12.2, 2.9, 2.6, 1.6, "cross-entropy\nevery pair of\ndifferent views", COLORS["loss"])
    _arrow(ax, (11.65, 5.85), (13.3, 4.55)), _arrow(ax, (11.65, 1.15), (13.3, 2.85))
    ax.annotate("", xy=(3.4, 5.25), xytext=(3.4, 1.75), arrowprops=dict(arrowstyle="-|>", color="#2a7", lw=1.2,
                                                                         ls="--", connectionstyle="arc3,rad=0.5"))
    ax.text(0.15, 2.2, "EMA after each step:\nθt ← m·θt + (1−m)·θs", fontsize=7.5, color="#2a7")
    ax.text(8.0, 4.6, f"c ← {loss.center_momentum:g}·c + {1 - loss.center_momentum:.2g}·mean(t)", fontsize=7.5,
            color="#8a5a00")
    return fig


def mae_flow(model, mask_ratio: float = 0.75, seed: int = 0):
    """MAE with ``model``'s grid, widths and depths: what the encoder and the decoder each process."""
    N, (gh, gw) = model.patch_embed.num_patches, model.patch_embed.grid_size
    keep = int(N * (1 - mask_ratio))
    enc_D, dec_D = model.cls_token.shape[-1], model.mask_token.shape[-1]
    masked = torch.ones(N, dtype=torch.bool, device="cpu")  # cpu even under a `with torch.device("meta")`
    masked[torch.randperm(N, generator=torch.Generator().manual_seed(seed), device="cpu")[:keep]] = False
    fig, ax = _canvas(15.5, 5.6, f"MAE at mask ratio {mask_ratio:g}: encoder on {keep} + 1 tokens, "
                                 f"decoder on {N} + 1")
    cell = 3.0 / max(gh, gw)
    for i in range(N):
        r, c = divmod(i, gw)
        ax.add_patch(Rectangle((0.2 + c * cell, 4.2 - (r + 1) * cell), cell, cell, ec="white", lw=0.5,
                               fc=COLORS["mask"] if masked[i] else COLORS["patch"]))
    ax.text(1.7, 0.8, f"{N} patches, {N - keep} removed", ha="center", fontsize=7.5)
    _arrow(ax, (3.35, 2.7), (4.1, 2.7))
    ax.text(3.72, 2.85, "keep", ha="center", va="bottom", fontsize=7.5)
    _box(ax, 4.2, 1.9, 2.9, 1.6, f"encoder\n{len(model.blocks)} blocks, width {enc_D}\n{keep} visible + CLS",
         COLORS["block"])
    _arrow(ax, (7.15, 2.7), (7.9, 2.7))
    seq = ["patch"] * 3 + ["mask"] * 3
    _tokens(ax, 8.0, 3.9, seq, ["v", "v", "v", "m", "m", "m"], size=0.4)
    ax.text(8.0, 4.5, "unshuffle (ids_restore)\n+ mask tokens + positions", fontsize=7.5)
    _box(ax, 8.0, 1.9, 3.1, 1.6, f"decoder\n{len(model.decoder_blocks)} blocks, width {dec_D}\n{N} + CLS tokens",
         COLORS["block"])
    _arrow(ax, (11.15, 2.7), (11.9, 2.7))
    P, C = model.patch_size, model.decoder_pred.out_features // model.patch_size ** 2
    _box(ax, 12.0, 1.9, 3.3, 1.6, f"pixels per patch\n{P}×{P}×{C} = {P * P * C}\nMSE on the {N - keep}\nremoved ones",
         COLORS["loss"])
    return fig


def swin_windows(block, grid: int = 8):
    """Window partition, shifted partition and the rolled map's mask regions for ``block``'s window
    size and shift, on a ``grid`` × ``grid`` token map. Tokens inside one thick-bordered piece attend to
    each other; pieces of one colour are computed as one window, the mask keeping them apart."""
    M, s = block.window_size, block.shift_size or block.window_size // 2
    if grid % M:
        raise ValueError(f"grid {grid} is not a multiple of the window size {M}: pick grid = k × {M}")
    palette = plt.get_cmap("Pastel1").colors
    n = grid // M
    fig, axes = plt.subplots(1, 3, figsize=(6.6, 3.3))  # the width of the page: nothing is shrunk
    titles = [f"block 2k:\n{n * n} windows of {M}×{M}", f"block 2k+1:\nwindows shifted by {s}",
              f"computed on the map\nrolled by −{s}"]
    for k, (ax, title) in enumerate(zip(axes, titles)):
        ax.set_xlim(0, grid), ax.set_ylim(grid, 0), ax.set_aspect("equal"), ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(title, fontsize=9)
        for r in range(grid):
            for c in range(grid):
                rr, cc = ((r - s) % grid, (c - s) % grid) if k == 1 else (r, c)
                ax.add_patch(Rectangle((c, r), 1, 1, fc=palette[((rr // M) * n + cc // M) % len(palette)], ec="#bbb",
                                       lw=0.3))
        cuts = [M - s + M * i for i in range(n)] if k == 1 else [M * i for i in range(1, n)]
        for cut in cuts:
            ax.axhline(cut, color="#333", lw=1.6), ax.axvline(cut, color="#333", lw=1.6)
    bands = [(0, grid - M), (grid - M, grid - s), (grid - s, grid)]
    for i, (r0, r1) in enumerate(bands):
        for j, (c0, c1) in enumerate(bands):
            axes[2].text((c0 + c1) / 2, (r0 + r1) / 2, str(3 * i + j), ha="center", va="center", fontsize=9,
                         color="#a33", weight="bold")
    for cut in (grid - M, grid - s):
        axes[2].axhline(cut, color="#a33", lw=0.8, ls="--"), axes[2].axvline(cut, color="#a33", lw=0.8, ls="--")
    axes[2].set_xlabel("red: the 9 mask regions; in one\nwindow, pairs from different\nregions are masked",
                       fontsize=8)
    fig.tight_layout()
    return fig


def register_tokens(model, convention: str = "dinov2"):
    """The token sequence of a ViT with registers, and where position embeddings go.

    ``convention="dinov2"``: DINOv2's own code (1 + N position rows, on the class token and the
    patches; registers inserted afterwards). ``"model"``: what ``model`` does (``no_embed_class``).
    """
    if convention not in ("dinov2", "model"):
        raise ValueError(f"convention={convention!r}: use 'dinov2' or 'model'")
    prefix = _prefix(model)
    R, N = prefix.count("reg"), model.patch_embed.num_patches
    kinds, labels = _row(prefix, N, shown=3)
    labels = [f"R{kinds[:i + 1].count('reg')}" if k == "reg" else lab for i, (k, lab) in enumerate(zip(kinds, labels))]
    if convention == "dinov2":
        on_prefix = {"cls"}
    else:
        on_prefix = set() if model.no_embed_class else set(PREFIX_TOKENS)
    marks = ["+pos" if (k == "patch" or k in on_prefix) else "" for k in kinds]
    rows = N + sum(k in on_prefix for k in prefix)
    where = "DINOv2's code adds" if convention == "dinov2" else "this model adds"
    width = 0.4 + len(kinds) * 0.63
    fig, ax = _canvas(max(width + 0.6, 11.0), 5.0, f"{len(prefix) + N} tokens with {R} registers; "
                                                   f"{where} {rows} position rows")
    centres = _tokens(ax, 0.4, 3.2, kinds, labels, marks=marks)
    _box(ax, 0.3, 1.7, width, 0.9, f"encoder: {len(model.blocks)} blocks\nregisters attend and are attended to",
         COLORS["block"], fontsize=7.5)
    outs = {"cls": "head", "reg": "dropped", "patch": "dense\nfeatures"}
    for kind, text in outs.items():
        xs = [c[0] for c, k in zip(centres, kinds) if k == kind]
        if xs:
            ax.text(sum(xs) / len(xs), 1.5, "↓\n" + text, ha="center", va="top", fontsize=7.5,
                    color="#a33" if kind == "reg" else "#333")
    return fig


def contrastive_targets(batch: int = 5):
    """Two towers and the ``batch`` × ``batch`` similarity matrix they fill, with what each loss asks of
    it: CLIP a softmax over every row and every column with the match on the diagonal, SigLIP one
    sigmoid per cell with label +1 on the diagonal and −1 elsewhere."""
    B = batch
    if B < 2:
        raise ValueError(f"batch={B}: draw at least 2 pairs")
    cell = 4.5 / B
    fig, ax = _canvas(23.0, 10.4, f"A batch of {B} image-caption pairs: one matrix of scores, two losses", scale=0.4)
    _box(ax, 0.2, 6.6, 3.0, 1.7, "captions\n'the digit 3'", fontsize=10)
    _arrow(ax, (3.3, 7.45), (3.9, 7.45))
    _box(ax, 4.0, 6.3, 3.5, 2.3, "text tower,\nprojection,\nunit length: $y_j$", COLORS["student"], fontsize=10)
    _box(ax, 0.2, 2.3, 3.0, 1.7, "images", fontsize=10)
    _arrow(ax, (3.3, 3.15), (3.9, 3.15))
    _box(ax, 4.0, 2.0, 3.5, 2.3, "image tower,\nprojection,\nunit length: $x_i$", COLORS["teacher"], fontsize=10)
    ax.text(0.3, 5.3, r"score $\ell_{ij} = t\,x_i\cdot y_j\ (+\,b)$", fontsize=10.5, ha="left", va="center")
    for k, (name, x0) in enumerate((("CLIP", 9.6), ("SigLIP", 17.0))):
        y0 = 2.2
        for i in range(B):
            for j in range(B):
                pos = i == j
                color = (COLORS["block"] if pos else "white") if k == 0 else ("#b7e4c7" if pos else "#f8d7da")
                ax.add_patch(Rectangle((x0 + j * cell, y0 + (B - 1 - i) * cell), cell, cell, fc=color, ec="#555",
                                       lw=0.6))
                label = ("1" if pos else "0") if k == 0 else ("+1" if pos else "−1")
                ax.text(x0 + (j + 0.5) * cell, y0 + (B - 0.5 - i) * cell, label, ha="center", va="center",
                        fontsize=10)
        for i in range(B):
            ax.text(x0 - 0.15, y0 + (B - 0.5 - i) * cell, f"$x_{i + 1}$", ha="right", va="center", fontsize=10)
            ax.text(x0 + (i + 0.5) * cell, y0 + B * cell + 0.15, f"$y_{i + 1}$", ha="center", va="bottom",
                    fontsize=10)
        top, right = y0 + B * cell, x0 + B * cell
        ax.text((x0 + right) / 2, top + 0.85, name, ha="center", va="bottom", fontsize=11, weight="bold")
        if k == 0:
            ax.add_patch(Rectangle((x0, top - cell), B * cell, cell, fc="none", ec="#1d4e89", lw=2.2))
            ax.add_patch(Rectangle((x0 + cell, y0), cell, B * cell, fc="none", ec="#a33", lw=2.2))
            ax.text(right + 0.15, top - cell / 2, "softmax\nalong\na row", color="#1d4e89", fontsize=9.5,
                    va="center")
            ax.text(x0 + 1.5 * cell, y0 - 0.15, "and along a column", color="#a33", fontsize=9.5, ha="center",
                    va="top")
            text = "targets: the diagonal,\ncross-entropy both ways"
        else:
            ax.add_patch(Rectangle((x0 + 3 * cell, top - 2 * cell), cell, cell, fc="none", ec="#333", lw=2.2))
            ax.text(right + 0.15, top - 1.5 * cell, "one\nsigmoid\nper cell", fontsize=9.5, va="center")
            ax.text(x0 + B * cell / 2, y0 - 0.15, "labels $z_{ij}$", fontsize=9.5, ha="center", va="top")
            text = r"$-\log\sigma(z_{ij}\,\ell_{ij})$, summed;" "\nno pair depends on the rest"
        ax.text(x0 + B * cell / 2, y0 - 1.0, text, ha="center", va="top", fontsize=9.5)
    ax.set_ylim(-0.4, 10.4)
    _arrow(ax, (7.6, 3.15), (8.95, 3.15))  # the images give the rows
    _arrow(ax, (7.6, 7.45), (9.65, 7.45))  # the captions give the columns
    return fig


def llava_path(vision, projector, prompt: tuple[str, ...] = ("USER:", "<image>", "What", "is", "this?", "ASSISTANT:"),
               select_layer: int = -2):
    """LLaVA-1.5's path from pixels to the sequence its language model reads, with the shape at each step,
    read from ``vision`` (a course ``ViT``, e.g. built on the meta device) and ``projector``: patch tokens
    from block ``len(blocks) + select_layer + 1`` (before the final norm), the class token dropped, each
    token projected, and the ``<image>`` placeholder of ``prompt`` replaced by all of them."""
    if prompt.count("<image>") != 1:
        raise ValueError("the prompt needs exactly one '<image>' placeholder")
    pe = vision.patch_embed
    (gh, gw), P, depth, D = pe.grid_size, pe.patch_size, len(vision.blocks), vision.embed_dim
    N, prefix, out = pe.num_patches, vision.num_prefix_tokens, projector.linear_2.out_features
    block = depth + select_layer + 1
    fig, ax = _canvas(22.0, 9.0, f"LLaVA-1.5: one image becomes {N} vectors of the language model's input",
                      scale=0.4)
    steps = [(f"pixels\n3 × {pe.img_size[0]} × {pe.img_size[1]}", "white"),
             (f"{gh}×{gw} patches\nof {P}×{P}, class\ntoken, positions\n({N + prefix}, {D})", COLORS["patch"]),
             (f"blocks 1 to {block}\nof {depth}; no\nfinal norm\n({N + prefix}, {D})", COLORS["block"]),
             (f"class token\ndropped\n({N}, {D})", COLORS["patch"]),
             (f"projector:\nLinear, GELU,\nLinear\n({N}, {out})", COLORS["head"])]
    w, gap = 3.8, 0.6
    for i, (text, color) in enumerate(steps):
        x = 0.2 + i * (w + gap)
        _box(ax, x, 5.6, w, 2.8, text, color, fontsize=10)
        if i:
            _arrow(ax, (x - gap + 0.05, 7.0), (x - 0.05, 7.0))
    y, h = 2.0, 1.3
    x = 0.2
    for word in prompt:
        if word == "<image>":
            ax.add_patch(Rectangle((x, y), 5.2, h, fc=COLORS["head"], ec="#333", lw=0.9))
            ax.text(x + 2.6, y + h / 2, f"{N} image vectors", ha="center", va="center", fontsize=10)
            ax.add_patch(Rectangle((x + 1.1, 4.0), 3.0, 1.0, fc="white", ec="#a33", lw=1.2, ls="--"))
            ax.text(x + 2.6, 4.5, "<image>", ha="center", va="center", fontsize=10, color="#a33")
            _arrow(ax, (x + 2.6, 3.95), (x + 2.6, y + h + 0.05), color="#a33")
            ax.text(x + 2.45, 3.65, "replaced by", color="#a33", fontsize=9.5, va="center", ha="right")
            image_x = x + 4.8
            x += 5.2 + 0.15
        else:
            width = max(1.7, 0.33 * len(word) + 0.5)
            ax.add_patch(Rectangle((x, y), width, h, fc=COLORS["mask"], ec="#333", lw=0.8))
            ax.text(x + width / 2, y + h / 2, word, ha="center", va="center", fontsize=10)
            x += width + 0.15
    _arrow(ax, (0.2 + 4 * (w + gap) + w / 2, 5.55), (image_x, y + h + 0.05))
    L = len(prompt)
    ax.text(0.2, y - 0.3, f"the language model reads {L} − 1 + {N} = {L - 1 + N} vectors of width {out} "
            "(the words through its own embedding table)", ha="left", va="top", fontsize=10)
    ax.set_ylim(0.9, 9.0)
    return fig
