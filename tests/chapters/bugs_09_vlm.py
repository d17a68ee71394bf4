"""Chapter 9 (VLM): plausible student bugs, each of which must lose points, and the BUGS dict."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.models import vlm as ref

from nbexec import Variant

CLIP_INIT = math.log(1 / 0.07)  # CLIP's initial logit_scale


def _cos(a, b):
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


# Plausible student bugs ------------------------------------------------------------------------

def clip_one_direction(image_emb, text_emb, logit_scale):
    """Only image -> text: the columns are never asked to pick their image."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb)
    return F.cross_entropy(logits, torch.arange(len(logits)))


def clip_targets_on_cpu(image_emb, text_emb, logit_scale):
    """Correct on the CPU, but the targets are created there whatever the embeddings' device."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb)
    target = torch.arange(len(logits))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def siglip_labels_on_cpu(image_emb, text_emb, logit_scale, logit_bias):
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) + logit_bias
    z = 2 * torch.eye(len(logits)) - 1
    return -F.logsigmoid(z * logits).sum(dim=1).mean()


def clip_temperature_divided(image_emb, text_emb, logit_scale):
    logits = _cos(image_emb, text_emb) / torch.as_tensor(logit_scale).exp()
    target = torch.arange(len(logits))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def clip_no_normalisation(image_emb, text_emb, logit_scale):
    logits = torch.as_tensor(logit_scale).exp() * image_emb @ text_emb.T
    target = torch.arange(len(logits))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def clip_no_exp(image_emb, text_emb, logit_scale):
    """Multiplies by logit_scale itself, not by its exponential."""
    logits = torch.as_tensor(logit_scale) * _cos(image_emb, text_emb)
    target = torch.arange(len(logits))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def clip_labels_off_diagonal(image_emb, text_emb, logit_scale):
    """Targets in the wrong order: image i is told its caption is B-1-i."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb)
    target = torch.arange(len(logits)).flip(0)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def siglip_positives_everywhere(image_emb, text_emb, logit_scale, logit_bias):
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) + logit_bias
    return -F.logsigmoid(logits).sum(dim=1).mean()


def siglip_bias_subtracted(image_emb, text_emb, logit_scale, logit_bias):
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) - logit_bias
    z = 2 * torch.eye(len(logits)) - 1
    return -F.logsigmoid(z * logits).sum(dim=1).mean()


def siglip_mean_over_pairs(image_emb, text_emb, logit_scale, logit_bias):
    """Averages over all B*B pairs instead of summing over captions and averaging over images."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) + logit_bias
    z = 2 * torch.eye(len(logits)) - 1
    return -F.logsigmoid(z * logits).mean()


def siglip_zero_one_labels(image_emb, text_emb, logit_scale, logit_bias):
    """Labels 1/0 instead of +1/-1: the negatives contribute a constant log 2."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) + logit_bias
    return -F.logsigmoid(torch.eye(len(logits)) * logits).sum(dim=1).mean()


def shuffle_consecutive(tokens, grid, factor=2):
    """Merges factor**2 consecutive tokens of the sequence: neighbours in a row, not a square."""
    B, N, C = tokens.shape
    return tokens.reshape(B, N // factor**2, factor**2 * C)


def shuffle_columns_first(tokens, grid, factor=2):
    """Right neighbourhoods, channel blocks in (dx, dy) order (InternVL's transposed 'v1' layout)."""
    h, w = (grid, grid) if isinstance(grid, int) else grid
    B, N, C = tokens.shape
    x = tokens.reshape(B, h // factor, factor, w // factor, factor, C).permute(0, 1, 3, 4, 2, 5)
    return x.reshape(B, N // factor**2, factor**2 * C)


def make_projector(solution_cls, act):
    class WrongActivation(solution_cls):
        def forward(self, x):
            return self.linear_2(act(self.linear_1(x)))

    return WrongActivation


def make_two_tower_scale_not_log(solution_cls):
    class ScaleNotLog(solution_cls):
        def __init__(self, *args, init_logit_scale=CLIP_INIT, **kwargs):
            super().__init__(*args, init_logit_scale=init_logit_scale, **kwargs)
            self.logit_scale = nn.Parameter(torch.tensor(math.exp(init_logit_scale)))  # stores t, not log t

    return ScaleNotLog


def make_two_tower_unnormalised(solution_cls):
    class Unnormalised(solution_cls):
        def encode_image(self, images):
            return self.image_proj(self.image_tower(images))

        def encode_text(self, tokens):
            return self.text_proj(self.text_tower(tokens))

    return Unnormalised


def tile_grid_first_wins(height, width, min_tiles=1, max_tiles=12, img_size=448):
    """Keeps the first of equally close grids: ignores InternVL's area rule."""
    best, best_diff = (1, 1), float("inf")
    for n in range(min_tiles, max_tiles + 1):
        for c in range(1, n + 1):
            if n % c == 0 and abs(width / height - c / (n // c)) < best_diff:
                best, best_diff = (c, n // c), abs(width / height - c / (n // c))
    return best[1], best[0]


def tile_grid_columns_first(height, width, min_tiles=1, max_tiles=12, img_size=448):
    rows, cols = ref.internvl_tile_grid(height, width, min_tiles, max_tiles, img_size)
    return cols, rows


def count_keeps_cls(height, width, scheme="llava", **kw):
    n = ref.visual_token_count(height, width, scheme, **kw)
    return n + 1 if scheme == "llava" else n


def count_no_thumbnail(height, width, scheme="llava", **kw):
    return ref.visual_token_count(height, width, scheme, **{**kw, "thumbnail": False}) if scheme == "internvl" \
        else ref.visual_token_count(height, width, scheme, **kw)


def count_thumbnail_always(height, width, scheme="llava", **kw):
    n = ref.visual_token_count(height, width, scheme, **kw)
    if scheme == "internvl" and kw.get("thumbnail", True):
        rows, cols = ref.internvl_tile_grid(height, width, kw.get("min_tiles", 1), kw.get("max_tiles", 12),
                                            kw.get("img_size") or 448)
        if rows * cols == 1:
            n += ((kw.get("img_size") or 448) // kw.get("patch_size", 14) // (kw.get("merge") or 2)) ** 2
    return n


def count_qwen_floor(height, width, scheme="llava", **kw):
    """Rounds each side down to a multiple of 28 instead of to the nearest one."""
    if scheme != "qwen2vl":
        return ref.visual_token_count(height, width, scheme, **kw)
    p, m = kw.get("patch_size", 14), kw.get("merge") or 2
    f = p * m
    h, w = max(f, height // f * f), max(f, width // f * f)
    lo, hi = kw.get("min_pixels", 4 * 784), kw.get("max_pixels", 16384 * 784)
    if h * w > hi:
        beta = math.sqrt(height * width / hi)
        h, w = max(f, math.floor(height / beta / f) * f), max(f, math.floor(width / beta / f) * f)
    elif h * w < lo:
        beta = math.sqrt(lo / (height * width))
        h, w = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
    return (h // p) * (w // p) // (m * m)


def count_qwen_unmerged(height, width, scheme="llava", **kw):
    n = ref.visual_token_count(height, width, scheme, **kw)
    return n * (kw.get("merge") or 2) ** 2 if scheme == "qwen2vl" else n


BUGS = {
    "clip_loss: one direction only": Variant({"clip_loss": clip_one_direction}, "test_clip_loss"),
    "clip_loss: temperature divided": Variant({"clip_loss": clip_temperature_divided}, "test_clip_loss", "test_two_tower"),
    "clip_loss: no L2 normalisation": Variant({"clip_loss": clip_no_normalisation}, "test_clip_loss"),
    "clip_loss: logit_scale used without exp": Variant({"clip_loss": clip_no_exp}, "test_clip_loss"),
    "clip_loss: matches off the diagonal": Variant({"clip_loss": clip_labels_off_diagonal}, "test_clip_loss", "test_two_tower"),
    "clip_loss: targets created on the CPU": Variant({"clip_loss": clip_targets_on_cpu}, "test_clip_loss"),
    "siglip_loss: labels created on the CPU": Variant({"siglip_loss": siglip_labels_on_cpu}, "test_siglip_loss"),
    "siglip_loss: positives everywhere": Variant({"siglip_loss": siglip_positives_everywhere}, "test_siglip_loss"),
    "siglip_loss: bias sign flipped": Variant({"siglip_loss": siglip_bias_subtracted}, "test_siglip_loss"),
    "siglip_loss: mean over all pairs": Variant({"siglip_loss": siglip_mean_over_pairs}, "test_siglip_loss"),
    "siglip_loss: 0/1 labels": Variant({"siglip_loss": siglip_zero_one_labels}, "test_siglip_loss"),
    "pixel_shuffle: consecutive tokens": Variant({"pixel_shuffle_tokens": shuffle_consecutive}, "test_pixel_shuffle"),
    "pixel_shuffle: columns first": Variant({"pixel_shuffle_tokens": shuffle_columns_first}, "test_pixel_shuffle"),
    "tile_grid: first of equal grids wins": Variant({"internvl_tile_grid": tile_grid_first_wins}, "test_tile_grid"),
    "tile_grid: (columns, rows)": Variant({"internvl_tile_grid": tile_grid_columns_first}, "test_tile_grid"),
    "token_count: CLS kept": Variant({"visual_token_count": count_keeps_cls}, "test_token_count"),
    "token_count: no thumbnail": Variant({"visual_token_count": count_no_thumbnail}, "test_token_count"),
    "token_count: thumbnail for a single tile": Variant({"visual_token_count": count_thumbnail_always}, "test_token_count"),
    "token_count: Qwen2-VL sides floored": Variant({"visual_token_count": count_qwen_floor}, "test_token_count"),
    "token_count: Qwen2-VL without the 2x2 merge": Variant({"visual_token_count": count_qwen_unmerged}, "test_token_count"),
    "Projector: tanh-approximated GELU": Variant(
        lambda ns: {"Projector": make_projector(ns["Projector"], lambda x: F.gelu(x, approximate="tanh"))},
        "test_projector"),
    "Projector: ReLU": Variant(lambda ns: {"Projector": make_projector(ns["Projector"], F.relu)}, "test_projector"),
    "TwoTower: stores 1/0.07 instead of its log": Variant(
        lambda ns: {"TwoTower": make_two_tower_scale_not_log(ns["TwoTower"])}, "test_two_tower"),
    "TwoTower: embeddings not normalised": Variant(
        lambda ns: {"TwoTower": make_two_tower_unnormalised(ns["TwoTower"])}, "test_two_tower"),
}
