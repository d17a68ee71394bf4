"""Chapter 9 graded tests, checked both ways.

The solution passes every graded cell on 10 seeds; each plausible bug below fails the cell meant to
catch it; a second, differently written correct answer for every exercise gets full marks.

What the training cell (test_two_tower) can and cannot see, measured over seeds 0-9 with its settings
(120 steps, temperature multiplier starting at 3): a CLIP loss that is one-directional still trains
(zero-shot 0.27-0.70 against 0.36-0.72 for the correct loss), so only test_clip_loss catches it; a
loss that divides by the temperature also trains (0.31-0.51) but drives the multiplier down (2.46-2.54
against 2.99-3.29), which the cell's temperature check (>= 2.7) catches; matches off the diagonal
leave the model at chance (0.10).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.models import vlm as ref

from nbexec import Variant, failed
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/09-vlm/09-vlm.ipynb"
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



# Different but correct answers: full marks ------------------------------------------------------

def clip_loss_by_log_softmax(image_emb, text_emb, logit_scale):
    x = image_emb / image_emb.norm(dim=1, keepdim=True)
    y = text_emb / text_emb.norm(dim=1, keepdim=True)
    logits = torch.exp(torch.as_tensor(logit_scale, dtype=x.dtype)) * (x @ y.T)
    return -(logits.log_softmax(dim=1).diagonal().mean() + logits.log_softmax(dim=0).diagonal().mean()) / 2


def siglip_loss_by_softplus(image_emb, text_emb, logit_scale, logit_bias):
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) + logit_bias
    B = len(logits)
    positives = F.softplus(-logits.diagonal()).sum()
    negatives = F.softplus(logits).sum() - F.softplus(logits.diagonal()).sum()
    return (positives + negatives) / B


class TwoTowerAlternative(nn.Module):
    """Written like openai/CLIP: a 0-d parameter from torch.ones([]), division by the norm."""

    def __init__(self, image_tower, text_tower, image_dim, text_dim, embed_dim, init_logit_scale=CLIP_INIT):
        super().__init__()
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.image_proj = nn.Linear(image_dim, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_dim, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.ones([]) * init_logit_scale)

    def encode_image(self, images):
        x = self.image_proj(self.image_tower(images))
        return x / x.norm(dim=-1, keepdim=True)

    def encode_text(self, tokens):
        y = self.text_proj(self.text_tower(tokens))
        return y / y.norm(dim=-1, keepdim=True)

    def forward(self, images, tokens):
        return self.encode_image(images), self.encode_text(tokens)


def pixel_shuffle_by_slicing(tokens, grid, factor=2):
    """Strided slices of the (B, h, w, C) grid, one per offset (dy, dx), concatenated along channels."""
    h, w = (grid, grid) if isinstance(grid, int) else grid
    if tokens.shape[1] != h * w or h % factor or w % factor:
        raise ValueError("tokens do not tile the grid")
    x = tokens.reshape(tokens.shape[0], h, w, -1)
    parts = [x[:, dy::factor, dx::factor] for dy in range(factor) for dx in range(factor)]
    return torch.cat(parts, dim=-1).flatten(1, 2)


class ProjectorAlternative(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, x):
        return self.linear_2(F.gelu(self.linear_1(x)))


def tile_grid_by_counts(height, width, min_tiles=1, max_tiles=12, img_size=448):
    best, best_diff = None, math.inf
    for n in range(min_tiles, max_tiles + 1):  # by tile count, then by columns
        for cols in (c for c in range(1, n + 1) if n % c == 0):
            rows = n // cols
            diff = abs(width / height - cols / rows)
            if best is None or diff < best_diff or (diff == best_diff and height * width > img_size**2 * n / 2):
                best, best_diff = (rows, cols), diff
    return best


def token_count_alternative(height, width, scheme="llava", *, patch_size=14, img_size=None, merge=None, min_tiles=1,
                            max_tiles=12, thumbnail=True, min_pixels=3136, max_pixels=12845056):
    def per_tile(size, m):
        return (size // patch_size // m) ** 2

    def qwen_side(x, f):
        return max(f, round(x / f) * f)

    if scheme not in ("llava", "internvl", "qwen2vl"):
        raise ValueError(scheme)
    if scheme == "llava":
        return per_tile(img_size or 336, merge or 1)
    if scheme == "internvl":
        rows, cols = tile_grid_by_counts(height, width, min_tiles, max_tiles, img_size or 448)
        n = rows * cols
        return (n + (thumbnail and n > 1)) * per_tile(img_size or 448, merge or 2)
    m = merge or 2
    f = patch_size * m
    h, w = qwen_side(height, f), qwen_side(width, f)
    if h * w > max_pixels:
        s = (max_pixels / (height * width)) ** 0.5
        h, w = max(f, math.floor(height * s / f) * f), max(f, math.floor(width * s / f) * f)
    elif h * w < min_pixels:
        s = (min_pixels / (height * width)) ** 0.5
        h, w = math.ceil(height * s / f) * f, math.ceil(width * s / f) * f
    return (h // patch_size) * (w // patch_size) // m**2


ALTERNATIVES = {
    "clip_loss with log_softmax": Variant({"clip_loss": clip_loss_by_log_softmax}, "test_clip_loss", "test_two_tower"),
    "siglip_loss with softplus": Variant({"siglip_loss": siglip_loss_by_softplus}, "test_siglip_loss"),
    "TwoTower written differently": Variant({"TwoTower": TwoTowerAlternative}, "test_two_tower"),
    "pixel_shuffle_tokens by slicing": Variant({"pixel_shuffle_tokens": pixel_shuffle_by_slicing}, "test_pixel_shuffle"),
    "Projector with other attribute names": Variant({"Projector": ProjectorAlternative}, "test_projector"),
    "internvl_tile_grid by counting": Variant({"internvl_tile_grid": tile_grid_by_counts}, "test_tile_grid"),
    "visual_token_count written differently": Variant({"visual_token_count": token_count_alternative},
                                                      "test_token_count"),
}


def test_every_answer_cell_has_an_alternative(run):
    answers = {c.grade_id for c in run.cells if c.kind == "solution"}
    assert len(answers) == len(ALTERNATIVES) == 7


def test_memorised_visible_answers_fail_the_hidden_part(run):
    """Answers that return the visible checks' values and nothing else pass the visible asserts only."""
    visible_counts = {(1080, 1920, "llava"): 576, (448, 448, "internvl"): 256, (1080, 1920, "internvl"): 2304,
                      (1080, 1920, "qwen2vl"): 2691}
    visible_grids = {(448, 448): (1, 1), (300, 600): (1, 2), (1080, 1920): (2, 4), (800, 800): (2, 2)}

    def count_memorised(height, width, scheme="llava", **kw):
        if scheme not in ("llava", "internvl", "qwen2vl"):
            raise ValueError(scheme)
        return visible_counts.get((height, width, scheme), 576)

    def grid_memorised(height, width, min_tiles=1, max_tiles=12, img_size=448):
        return visible_grids.get((height, width), (1, 1))

    results = run.rerun_tests(overrides={"visual_token_count": count_memorised, "internvl_tile_grid": grid_memorised},
                              only={"test_token_count", "test_tile_grid"})
    assert failed(results) == {"test_token_count", "test_tile_grid"}
    assert "min_tiles=" in results["test_tile_grid"]  # the names of the hidden checks, not the visible ones
    assert "visual_token_count(" in results["test_token_count"]
