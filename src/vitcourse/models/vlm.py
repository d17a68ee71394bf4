"""Chapter 9: a ViT inside a vision-language model.

Two ways a ViT meets language, and the reference for every graded piece of the chapter:

- **Contrastive alignment** (CLIP, SigLIP): an image tower and a text tower map their inputs into one
  space; ``clip_loss`` and ``siglip_loss`` pull matching pairs together. ``TwoTower`` joins two towers
  with projections and a learned temperature; ``TextTower`` is the small text tower the chapter
  trains. (Its captions, vocabulary and training loop are in ``vitcourse.experiments.vlm``;
  ``zero_shot_accuracy`` and ``recall_at_1``, which measure a trained pair of towers, in
  ``vitcourse.analysis``.)
- **Visual tokens for a language model** (LLaVA, InternVL, Qwen2-VL): patch tokens are merged
  (``pixel_shuffle_tokens``), projected to the language model's width (``Projector``), put in the
  place of the prompt's ``<image>`` placeholder (``insert_image_tokens``) and counted
  (``internvl_tile_grid``, ``smart_resize``, ``visual_token_count``).

Conventions, each checked against the official code:

- ``logit_scale`` is the *stored* parameter, the log of the multiplier: logits = exp(logit_scale) *
  cos. CLIP initialises it to log(1/0.07) and exponentiates in ``forward`` (openai/CLIP clip/model.py,
  ``CLIP.__init__`` and ``CLIP.forward``); SigLIP learns t' with t = exp(t'), initialised to log(10),
  and a bias b initialised to -10 (Zhai et al. 2023, Algorithm 1; big_vision
  models/proj/image_text/two_towers.py). open_clip's losses receive the multiplier already
  exponentiated (src/open_clip/loss.py, ``ClipLoss``/``SigLipLoss``); ours take the log and
  exponentiate inside.
- Both losses L2-normalise the embeddings first, as both papers do.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.models.vit import Block

__all__ = [
    "EOS",
    "PAD",
    "SCHEMES",
    "Projector",
    "TextTower",
    "TwoTower",
    "clip_loss",
    "insert_image_tokens",
    "internvl_tile_grid",
    "pixel_shuffle_tokens",
    "siglip_loss",
    "smart_resize",
    "visual_token_count",
]

PAD, EOS = 0, 1  # token ids of padding and of the end of a caption


# Contrastive losses ------------------------------------------------------------------------------

def _similarities(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    if image_emb.ndim != 2 or image_emb.shape != text_emb.shape:  # not graded in 09-vlm: the checks pass (B, D) pairs
        raise ValueError(f"expected image and text embeddings of the same shape (B, D), got "
                         f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    return F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T  # (B, B) cosines


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP's symmetric InfoNCE loss. image_emb, text_emb (B, D), row i of each a matching pair.

    logits = exp(logit_scale) * cos(image_i, text_j), a (B, B) matrix; the loss is the mean of the
    cross-entropy over each row (image -> text) and over each column (text -> image), with the match
    on the diagonal. ``logit_scale`` is the log of the multiplier (CLIP starts at log(1/0.07)).
    """
    logits = torch.as_tensor(logit_scale).exp() * _similarities(image_emb, text_emb)  # (B, B)
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def siglip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float,
                logit_bias: torch.Tensor | float) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss. image_emb, text_emb (B, D), row i of each a matching pair.

    z_ij = exp(logit_scale) * cos(image_i, text_j) + logit_bias; every pair is a binary problem with
    label +1 on the diagonal and -1 elsewhere: loss = -(1/B) sum_ij log sigmoid(label_ij * z_ij), i.e.
    summed over the texts j and averaged over the images i (big_vision trainers/proj/image_text/siglip.py).
    """
    logits = torch.as_tensor(logit_scale).exp() * _similarities(image_emb, text_emb) + logit_bias
    labels = 2 * torch.eye(logits.shape[0], device=logits.device, dtype=logits.dtype) - 1  # +1 diagonal, -1 elsewhere
    return -F.logsigmoid(labels * logits).sum(dim=1).mean()


class TwoTower(nn.Module):
    """An image tower and a text tower projected into one space, with a learned temperature.

    ``image_tower``: images -> (B, image_dim) (e.g. a course ``ViT`` with ``num_classes=0``);
    ``text_tower``: token ids (B, L) -> (B, text_dim). Each is followed by a linear projection without
    bias to ``embed_dim`` (CLIP's ``proj`` and ``text_projection`` matrices). ``encode_image`` and
    ``encode_text`` return L2-normalised (B, embed_dim) embeddings. ``logit_scale`` is a learned
    scalar initialised to ``init_logit_scale`` (CLIP: log(1/0.07)); ``logit_bias`` exists only when
    ``init_logit_bias`` is given (SigLIP: log(10) and -10).
    """

    def __init__(self, image_tower: nn.Module, text_tower: nn.Module, image_dim: int, text_dim: int,
                 embed_dim: int, init_logit_scale: float = math.log(1 / 0.07),
                 init_logit_bias: float | None = None) -> None:
        super().__init__()
        self.image_tower, self.text_tower = image_tower, text_tower
        self.image_proj = nn.Linear(image_dim, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_dim, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(init_logit_bias))) if init_logit_bias is not None else None

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.image_tower(images)), dim=-1)  # (B, embed_dim)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text_tower(tokens)), dim=-1)  # (B, embed_dim)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_image(images), self.encode_text(tokens)


class TextTower(nn.Module):
    """Token ids (B, L) -> caption features (B, width); id ``PAD`` (0) pads, ``EOS`` (1) ends a caption.

    Token embedding + learned position embedding -> ``depth`` course ``Block``s -> LayerNorm -> the
    feature at the ``<eos>`` token (``pool="eos"``, as CLIP's text tower) or the mean over the
    caption's non-padding tokens (``pool="mean"``). Attention is not masked: with so few words the
    padding tokens are harmless, and their outputs are never pooled.
    """

    def __init__(self, vocab_size: int, max_len: int, width: int = 64, depth: int = 2, num_heads: int = 4,
                 pool: str = "eos") -> None:
        super().__init__()
        if pool not in ("eos", "mean"):  # not graded in 09-vlm: the text tower is given
            raise ValueError(f"pool={pool!r}: use 'eos' or 'mean'")
        self.pool, self.width = pool, width
        self.token_embed = nn.Embedding(vocab_size, width)
        self.pos_embed = nn.Parameter(torch.randn(1, max_len, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        nn.init.normal_(self.token_embed.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embed(tokens) + self.pos_embed[:, : tokens.shape[1]]  # (B, L, width)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if self.pool == "mean":  # not graded in 09-vlm: the chapter's text tower pools at <eos>
            keep = (tokens != PAD).unsqueeze(-1).float()
            return (x * keep).sum(1) / keep.sum(1)  # (B, width)
        eos = (tokens == EOS).int().argmax(dim=1)  # position of <eos> in each caption
        return x[torch.arange(len(x), device=x.device), eos]  # (B, width)


# Visual tokens for a language model --------------------------------------------------------------

def pixel_shuffle_tokens(tokens: torch.Tensor, grid: int | tuple[int, int], factor: int = 2) -> torch.Tensor:
    """Merge each factor x factor neighbourhood of patch tokens into one token. (B, h*w, C) ->
    (B, (h/f)*(w/f), f*f*C).

    ``tokens`` are patch tokens only (no CLS), row-major on an h x w ``grid``. Output token (i, j) of
    the (h/f) x (w/f) grid, also row-major, is the concatenation of the input tokens at rows f*i + dy
    and columns f*j + dx, in row-major (dy, dx) order: top-left, top-right, bottom-left, bottom-right
    for f = 2. This is the layout of InternVL's ``pixel_shuffle`` with scale_factor = 1/f and
    ps_version "v2" (internvl_chat/internvl/model/internvl_chat/modeling_internvl_chat.py; the same in
    transformers' ``InternVLModel.pixel_shuffle``), which InternVL applies to the (h, w, C) grid.
    """
    h, w = (grid, grid) if isinstance(grid, int) else grid
    B, N, C = tokens.shape
    if N != h * w:
        raise ValueError(f"{N} tokens do not form a {h}x{w} grid: drop the prefix (CLS) tokens first")
    if h % factor or w % factor:
        raise ValueError(f"a {h}x{w} grid cannot be cut into {factor}x{factor} neighbourhoods")
    x = tokens.reshape(B, h // factor, factor, w // factor, factor, C)  # (B, i, dy, j, dx, C)
    x = x.permute(0, 1, 3, 2, 4, 5)  # (B, i, j, dy, dx, C)
    return x.reshape(B, (h // factor) * (w // factor), factor * factor * C)


class Projector(nn.Module):
    """Two-layer MLP from the vision width to the language model's width: Linear -> GELU -> Linear.

    (B, N, in_dim) -> (B, N, out_dim). LLaVA-1.5's ``mlp2x_gelu`` (haotian-liu/LLaVA
    llava/model/multimodal_projector/builder.py); the names ``linear_1``/``linear_2`` are those of
    transformers' ``LlavaMultiModalProjector``. InternVL's ``mlp1`` adds a LayerNorm in front.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


def insert_image_tokens(text_emb: torch.Tensor, input_ids: torch.Tensor, image_tokens: torch.Tensor,
                        image_token_id: int) -> torch.Tensor:
    """Put each prompt's image tokens where its ``<image>`` placeholder is. (B, L, D) -> (B, L - 1 + N, D).

    ``text_emb`` (B, L, D) embeds the prompts ``input_ids`` (B, L), each row holding ``image_token_id``
    exactly once; ``image_tokens`` (B, N, D) are the projected patch tokens, row b for prompt b. Row b
    of the result is text_emb[b, :p], image_tokens[b], text_emb[b, p + 1:] with p the placeholder's
    position in row b: the placeholder's own embedding is dropped. LLaVA splits each prompt at its
    image token and concatenates the pieces the same way (haotian-liu/LLaVA llava/model/llava_arch.py,
    ``prepare_inputs_labels_for_multimodal``); transformers' LLaVA lets the processor repeat the
    placeholder N times and scatters the tokens into those positions, which gives the same sequence.
    """
    B, L, D = text_emb.shape
    well_formed = input_ids.shape == (B, L) and image_tokens.shape[0] == B and image_tokens.shape[2] == D
    if not well_formed:  # not graded in 09-vlm: the exercise promises consistent shapes
        raise ValueError(f"expected text_emb (B, L, D), input_ids (B, L) and image_tokens (B, N, D), got "
                         f"{tuple(text_emb.shape)}, {tuple(input_ids.shape)} and {tuple(image_tokens.shape)}")
    is_image = input_ids == image_token_id  # (B, L)
    counts = is_image.sum(dim=1).tolist()
    if any(c != 1 for c in counts):
        raise ValueError(f"every prompt needs exactly one image placeholder (id {image_token_id}); "
                         f"the rows hold {counts}")
    positions = is_image.int().argmax(dim=1).tolist()  # the placeholder's index in each row
    rows = [torch.cat([text_emb[b, :p], image_tokens[b], text_emb[b, p + 1:]]) for b, p in enumerate(positions)]
    return torch.stack(rows)  # (B, L - 1 + N, D)


def internvl_tile_grid(height: int, width: int, min_tiles: int = 1, max_tiles: int = 12,
                       img_size: int = 448) -> tuple[int, int]:
    """InternVL's dynamic tiling: the (rows, columns) of square tiles an image is resized to.

    Candidates are all grids with min_tiles <= rows * columns <= max_tiles. The grid whose aspect ratio
    (columns / rows) is closest to width / height wins; candidates are visited by increasing tile
    count (grids of equal count in order of columns, then rows), and a later candidate with an *equal*
    distance replaces the best one when the image area exceeds half the area of its tiles
    (``dynamic_preprocess`` and ``find_closest_aspect_ratio`` in internvl_chat/internvl/train/dataset.py;
    transformers' ``get_optimal_tiled_canvas`` uses the same order).
    """
    if min_tiles < 1 or max_tiles < min_tiles:  # not graded in 09-vlm: the checks keep 1 <= min_tiles <= max_tiles
        raise ValueError(f"need 1 <= min_tiles <= max_tiles, got min_tiles={min_tiles}, max_tiles={max_tiles}")
    aspect, area = width / height, width * height
    grids = sorted(((c, r) for c in range(1, max_tiles + 1) for r in range(1, max_tiles + 1)
                    if min_tiles <= c * r <= max_tiles), key=lambda g: g[0] * g[1])
    best, best_diff = (1, 1), float("inf")
    for c, r in grids:
        diff = abs(aspect - c / r)
        if diff < best_diff:
            best, best_diff = (c, r), diff
        elif diff == best_diff and area > 0.5 * img_size * img_size * c * r:
            best = (c, r)
    return best[1], best[0]


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 4 * 28 * 28,
                 max_pixels: int = 16384 * 28 * 28) -> tuple[int, int]:
    """Qwen2-VL's resize rule: (height, width) -> multiples of ``factor`` (patch 14 x merge 2 = 28) with
    min_pixels <= h * w <= max_pixels, keeping the aspect ratio as well as possible.

    Each side is rounded to the nearest multiple (Python's ``round``: halves go to the even multiple);
    if the area is then too large, both sides are scaled by sqrt(area / max_pixels) and floored to a
    multiple, if too small scaled up and ceiled. Defaults: qwen-vl-utils (QwenLM/Qwen2-VL,
    qwen-vl-utils/src/qwen_vl_utils/vision_process.py); transformers' Qwen2-VL image processor applies
    the same rule (its default max_pixels is 28*28*1280).
    """
    if max(height, width) / min(height, width) > 200:  # not graded in 09-vlm: the exercise leaves out this limit
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} is above Qwen2-VL's limit of 200")
    h, w = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


SCHEMES = ("llava", "internvl", "qwen2vl")


def visual_token_count(height: int, width: int, scheme: str = "llava", *, patch_size: int = 14,
                       img_size: int | None = None, merge: int | None = None, min_tiles: int = 1,
                       max_tiles: int = 12, thumbnail: bool = True, min_pixels: int = 4 * 28 * 28,
                       max_pixels: int = 16384 * 28 * 28) -> int:
    """Visual tokens a language model receives for one height x width image.

    - ``"llava"`` (LLaVA-1.5): the image becomes one img_size (336) square; the ViT-L/14 patch tokens
      are kept and the CLS token dropped (``mm_vision_select_feature='patch'``): (336/14)^2 = 576.
    - ``"internvl"`` (InternVL 1.5 to 2.5): ``internvl_tile_grid`` tiles of img_size (448) px, plus one
      thumbnail of the whole image when there is more than one tile; every tile gives
      (448/14)^2 = 1024 patches, merged ``merge`` x ``merge`` (pixel shuffle 0.5: merge=2) into 256.
    - ``"qwen2vl"`` (Qwen2-VL): the image keeps (about) its own size, ``smart_resize`` with factor
      patch_size * merge; the patches are merged 2 x 2: (h/14) * (w/14) / 4 tokens.
    Defaults per scheme: img_size 336 / 448 / unused, merge 1 / 2 / 2.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme={scheme!r}: use one of {SCHEMES}")
    if scheme == "llava":
        img_size, merge = img_size or 336, merge or 1
        return ((img_size // patch_size) // merge) ** 2
    if scheme == "internvl":
        img_size, merge = img_size or 448, merge or 2
        rows, cols = internvl_tile_grid(height, width, min_tiles, max_tiles, img_size)
        tiles = rows * cols + int(thumbnail and rows * cols > 1)
        return tiles * ((img_size // patch_size) // merge) ** 2
    merge = merge or 2
    h, w = smart_resize(height, width, patch_size * merge, min_pixels, max_pixels)
    return (h // patch_size) * (w // patch_size) // (merge * merge)
