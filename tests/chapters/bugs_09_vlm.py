"""Chapter 9 (VLM): plausible student bugs, each of which must lose points, and the BUGS dict.

Each bug declares what the student sees before submitting: the visible check that fails (the one right
under its exercise) and a piece of the message it prints there.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.models import vlm as ref

from nbexec import Variant

CLIP_INIT = math.log(1 / 0.07)  # CLIP's initial logit_scale


def _cos(a, b):
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def _both(logits, target):
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


# Plausible student bugs: clip_loss ---------------------------------------------------------------

def clip_one_direction(image_emb, text_emb, logit_scale):
    """Only image -> text: the columns are never asked to pick their image."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb)
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def clip_targets_on_cpu(image_emb, text_emb, logit_scale):
    """Correct on the CPU, but the targets are created there whatever the embeddings' device."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb)
    return _both(logits, torch.arange(len(logits)))


def clip_temperature_divided(image_emb, text_emb, logit_scale):
    logits = _cos(image_emb, text_emb) / torch.as_tensor(logit_scale).exp()
    return _both(logits, torch.arange(len(logits), device=logits.device))


def clip_no_normalisation(image_emb, text_emb, logit_scale):
    logits = torch.as_tensor(logit_scale).exp() * image_emb @ text_emb.T
    return _both(logits, torch.arange(len(logits), device=logits.device))


def clip_no_exp(image_emb, text_emb, logit_scale):
    """Multiplies by logit_scale itself, not by its exponential."""
    logits = torch.as_tensor(logit_scale) * _cos(image_emb, text_emb)
    return _both(logits, torch.arange(len(logits), device=logits.device))


def clip_labels_off_diagonal(image_emb, text_emb, logit_scale):
    """Targets in the wrong order: image i is told its caption is B-1-i."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb)
    return _both(logits, torch.arange(len(logits), device=logits.device).flip(0))


def clip_math_exp(image_emb, text_emb, logit_scale):
    """math.exp works on a float and on a 0-d tensor alike, but returns a float: the gradient is lost."""
    logits = math.exp(logit_scale) * _cos(image_emb, text_emb)
    return _both(logits, torch.arange(len(logits), device=logits.device))


def clip_item(image_emb, text_emb, logit_scale):
    """float() on logit_scale, "to accept both kinds": the parameter leaves the graph."""
    logits = torch.tensor(float(logit_scale)).exp() * _cos(image_emb, text_emb)
    return _both(logits, torch.arange(len(logits), device=logits.device))


def clip_float32(image_emb, text_emb, logit_scale):
    """Casts the embeddings to float32 "for stability"."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb.float(), text_emb.float())
    return _both(logits, torch.arange(len(logits), device=logits.device))


# Plausible student bugs: siglip_loss -------------------------------------------------------------

def _labels(logits):
    return 2 * torch.eye(len(logits), device=logits.device, dtype=logits.dtype) - 1


def siglip_labels_on_cpu(image_emb, text_emb, logit_scale, logit_bias):
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) + logit_bias
    z = 2 * torch.eye(len(logits)) - 1
    return -F.logsigmoid(z * logits).sum(dim=1).mean()


def siglip_positives_everywhere(image_emb, text_emb, logit_scale, logit_bias):
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) + logit_bias
    return -F.logsigmoid(logits).sum(dim=1).mean()


def siglip_bias_subtracted(image_emb, text_emb, logit_scale, logit_bias):
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) - logit_bias
    return -F.logsigmoid(_labels(logits) * logits).sum(dim=1).mean()


def siglip_mean_over_pairs(image_emb, text_emb, logit_scale, logit_bias):
    """Averages over all B*B pairs instead of summing over captions and averaging over images."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) + logit_bias
    return -F.logsigmoid(_labels(logits) * logits).mean()


def siglip_zero_one_labels(image_emb, text_emb, logit_scale, logit_bias):
    """Labels 1/0 instead of +1/-1: the negatives contribute a constant log 2."""
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) + logit_bias
    return -F.logsigmoid(torch.eye(len(logits), device=logits.device) * logits).sum(dim=1).mean()


def siglip_math_exp(image_emb, text_emb, logit_scale, logit_bias):
    logits = math.exp(logit_scale) * _cos(image_emb, text_emb) + logit_bias
    return -F.logsigmoid(_labels(logits) * logits).sum(dim=1).mean()


def siglip_no_normalisation(image_emb, text_emb, logit_scale, logit_bias):
    logits = torch.as_tensor(logit_scale).exp() * image_emb @ text_emb.T + logit_bias
    return -F.logsigmoid(_labels(logits) * logits).sum(dim=1).mean()


# Plausible student bugs: TwoTower ----------------------------------------------------------------

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


def make_two_tower_with_bias(solution_cls):
    class WithBias(solution_cls):
        def __init__(self, image_tower, text_tower, image_dim, text_dim, embed_dim, init_logit_scale=CLIP_INIT):
            super().__init__(image_tower, text_tower, image_dim, text_dim, embed_dim, init_logit_scale)
            self.image_proj = nn.Linear(image_dim, embed_dim)
            self.text_proj = nn.Linear(text_dim, embed_dim)

    return WithBias


def make_two_tower_plain_tensor(solution_cls):
    class PlainTensor(solution_cls):
        """logit_scale as a plain tensor: it never trains (and is not in the state dict)."""

        def __init__(self, *args, init_logit_scale=CLIP_INIT, **kwargs):
            super().__init__(*args, init_logit_scale=init_logit_scale, **kwargs)
            del self.logit_scale
            self.logit_scale = torch.tensor(float(init_logit_scale))

    return PlainTensor


# Plausible student bugs: pixel_shuffle_tokens ----------------------------------------------------

def shuffle_consecutive(tokens, grid, factor=2):
    """Merges factor**2 consecutive tokens of the sequence: neighbours in a row, not a square."""
    h, w = (grid, grid) if isinstance(grid, int) else grid
    B, N, C = tokens.shape
    if N != h * w or h % factor or w % factor:
        raise ValueError("bad grid")
    return tokens.reshape(B, N // factor**2, factor**2 * C)


def shuffle_columns_first(tokens, grid, factor=2):
    """Right neighbourhoods, channel blocks in (dx, dy) order (InternVL's transposed 'v1' layout)."""
    h, w = (grid, grid) if isinstance(grid, int) else grid
    B, N, C = tokens.shape
    if N != h * w or h % factor or w % factor:
        raise ValueError("bad grid")
    x = tokens.reshape(B, h // factor, factor, w // factor, factor, C).permute(0, 1, 3, 4, 2, 5)
    return x.reshape(B, N // factor**2, factor**2 * C)


def shuffle_square_only(tokens, grid, factor=2):
    """Takes the side from the number of tokens: right for square grids only."""
    B, N, C = tokens.shape
    h = w = int(math.sqrt(N))
    if h * w != N or h % factor:
        raise ValueError("tokens do not form a square grid")
    x = tokens.reshape(B, h // factor, factor, w // factor, factor, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, N // factor**2, factor**2 * C)


def shuffle_width_first(tokens, grid, factor=2):
    """Reads grid as (width, height)."""
    w, h = (grid, grid) if isinstance(grid, int) else grid
    return ref.pixel_shuffle_tokens(tokens, (h, w), factor)


def shuffle_no_check(tokens, grid, factor=2):
    """No ValueError: a grid that does not match the tokens fails in reshape, or worse, passes."""
    h, w = (grid, grid) if isinstance(grid, int) else grid
    B, N, C = tokens.shape
    x = tokens.reshape(B, h // factor, factor, w // factor, factor, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, (h // factor) * (w // factor), factor * factor * C)


# Plausible student bugs: Projector and insert_image_tokens ---------------------------------------

def make_projector(solution_cls, act):
    class WrongActivation(solution_cls):
        def forward(self, x):
            return self.linear_2(act(self.linear_1(x)))

    return WrongActivation


def make_projector_hidden_in_dim(solution_cls):
    class HiddenInDim(solution_cls):
        """The hidden layer keeps the vision width: Linear(in, in), GELU, Linear(in, out)."""

        def __init__(self, in_dim, out_dim):
            super().__init__(in_dim, out_dim)
            self.linear_1 = nn.Linear(in_dim, in_dim)
            self.linear_2 = nn.Linear(in_dim, out_dim)

    return HiddenInDim


def insert_keeps_placeholder(text_emb, input_ids, image_tokens, image_token_id):
    """The image tokens go right after the placeholder, which stays."""
    rows = []
    for b in range(len(input_ids)):
        p = int((input_ids[b] == image_token_id).nonzero()[0])
        rows.append(torch.cat([text_emb[b, :p + 1], image_tokens[b], text_emb[b, p + 1:]]))
    return torch.stack(rows)


def insert_first_row_position(text_emb, input_ids, image_tokens, image_token_id):
    """The placeholder found in row 0 only: right while every prompt is the same."""
    if ((input_ids == image_token_id).sum(dim=1) != 1).any():
        raise ValueError("one placeholder per row")
    p = int((input_ids[0] == image_token_id).nonzero()[0])
    return torch.cat([text_emb[:, :p], image_tokens, text_emb[:, p + 1:]], dim=1)


def insert_first_row_image(text_emb, input_ids, image_tokens, image_token_id):
    """Every prompt gets the first image's tokens."""
    return ref.insert_image_tokens(text_emb, input_ids, image_tokens[:1].expand_as(image_tokens), image_token_id)


def insert_no_check(text_emb, input_ids, image_tokens, image_token_id):
    """No ValueError: a prompt without a placeholder gets no image, one with two gets it at the first."""
    rows = []
    for b in range(len(input_ids)):
        p = int((input_ids[b] == image_token_id).int().argmax())
        rows.append(torch.cat([text_emb[b, :p], image_tokens[b], text_emb[b, p + 1:]]))
    return torch.stack(rows)


# Plausible student bugs: internvl_tile_grid ------------------------------------------------------

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


def tile_grid_fixed_448(height, width, min_tiles=1, max_tiles=12, img_size=448):
    """The tie rule with 448 written in, whatever img_size is."""
    return ref.internvl_tile_grid(height, width, min_tiles, max_tiles, 448)


def tile_grid_all_counts(height, width, min_tiles=1, max_tiles=12, img_size=448):
    """Candidates from 1 to 12 tiles, whatever min_tiles and max_tiles say."""
    return ref.internvl_tile_grid(height, width, 1, 12, img_size)


# Plausible student bugs: visual_token_count ------------------------------------------------------

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


def count_thumbnail_flag_ignored(height, width, scheme="llava", **kw):
    return ref.visual_token_count(height, width, scheme, **{**kw, "thumbnail": True}) if scheme == "internvl" \
        else ref.visual_token_count(height, width, scheme, **kw)


def _qwen(height, width, kw, side=None, down=math.floor, up_branch=True):
    """Qwen2-VL's count with one step replaced: ``side`` rounds the sides first, ``down`` rounds them after
    a shrink, ``up_branch=False`` drops the min_pixels branch."""
    p, m = kw.get("patch_size", 14), kw.get("merge") or 2
    f = p * m
    side = side or (lambda x: max(f, round(x / f) * f))
    h, w = side(height), side(width)
    lo, hi = kw.get("min_pixels", 4 * 784), kw.get("max_pixels", 16384 * 784)
    if h * w > hi:
        beta = math.sqrt(height * width / hi)
        h, w = max(f, down(height / beta / f) * f), max(f, down(width / beta / f) * f)
    elif h * w < lo and up_branch:
        beta = math.sqrt(lo / (height * width))
        h, w = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
    return (h // p) * (w // p) // (m * m)


def count_qwen_floor(height, width, scheme="llava", **kw):
    """Rounds each side down to a multiple of 28 instead of to the nearest one."""
    if scheme != "qwen2vl":
        return ref.visual_token_count(height, width, scheme, **kw)
    f = kw.get("patch_size", 14) * (kw.get("merge") or 2)
    return _qwen(height, width, kw, side=lambda x: max(f, x // f * f))


def count_qwen_no_min_pixels(height, width, scheme="llava", **kw):
    """Forgets the min_pixels branch: small images keep their rounded size."""
    if scheme != "qwen2vl":
        return ref.visual_token_count(height, width, scheme, **kw)
    return _qwen(height, width, kw, up_branch=False)


def count_qwen_shrink_rounded(height, width, scheme="llava", **kw):
    """After shrinking, rounds to the nearest multiple: the area may end up above max_pixels."""
    if scheme != "qwen2vl":
        return ref.visual_token_count(height, width, scheme, **kw)
    return _qwen(height, width, kw, down=round)


def count_qwen_unmerged(height, width, scheme="llava", **kw):
    n = ref.visual_token_count(height, width, scheme, **kw)
    return n * (kw.get("merge") or 2) ** 2 if scheme == "qwen2vl" else n


def _ns(name, make):
    return lambda ns: {name: make(ns[name])}


BUGS = {
    "clip_loss: one direction only": Variant({"clip_loss": clip_one_direction}, "test_clip_loss",
                                             check="test_clip_loss", hint="the rows alone"),
    "clip_loss: temperature divided": Variant({"clip_loss": clip_temperature_divided}, "test_clip_loss", "test_two_tower",
                                              check="test_clip_loss", hint="dividing the cosines by exp(logit_scale)"),
    "clip_loss: no L2 normalisation": Variant({"clip_loss": clip_no_normalisation}, "test_clip_loss",
                                              check="test_clip_loss", hint="leaving the embeddings unnormalised"),
    "clip_loss: logit_scale used without exp": Variant({"clip_loss": clip_no_exp}, "test_clip_loss",
                                                       check="test_clip_loss", hint="by logit_scale itself"),
    "clip_loss: matches off the diagonal": Variant({"clip_loss": clip_labels_off_diagonal}, "test_clip_loss", "test_two_tower",
                                                   check="test_clip_loss", hint="targets other than the diagonal"),
    "clip_loss: targets created on the CPU": Variant({"clip_loss": clip_targets_on_cpu}, "test_clip_loss",
                                                     check="test_clip_loss", hint="device=logits.device"),
    "clip_loss: math.exp(logit_scale)": Variant({"clip_loss": clip_math_exp}, "test_clip_loss",
                                                check="test_clip_loss", hint="math.exp"),
    "clip_loss: float(logit_scale)": Variant({"clip_loss": clip_item}, "test_clip_loss",
                                             check="test_clip_loss", hint="float()"),
    "clip_loss: embeddings cast to float32": Variant({"clip_loss": clip_float32}, "test_clip_loss",
                                                     check="test_clip_loss", hint="keep the embeddings' dtype"),
    "siglip_loss: labels created on the CPU": Variant({"siglip_loss": siglip_labels_on_cpu}, "test_siglip_loss",
                                                      check="test_siglip_loss", hint="device=logits.device"),
    "siglip_loss: positives everywhere": Variant({"siglip_loss": siglip_positives_everywhere}, "test_siglip_loss",
                                                 check="test_siglip_loss", hint="labels +1 everywhere"),
    "siglip_loss: bias sign flipped": Variant({"siglip_loss": siglip_bias_subtracted}, "test_siglip_loss",
                                              check="test_siglip_loss", hint="subtracting the bias"),
    "siglip_loss: mean over all pairs": Variant({"siglip_loss": siglip_mean_over_pairs}, "test_siglip_loss",
                                                check="test_siglip_loss", hint="averaging over all B * B pairs"),
    "siglip_loss: 0/1 labels": Variant({"siglip_loss": siglip_zero_one_labels}, "test_siglip_loss",
                                       check="test_siglip_loss", hint="labels 1 and 0"),
    "siglip_loss: math.exp(logit_scale)": Variant({"siglip_loss": siglip_math_exp}, "test_siglip_loss",
                                                  check="test_siglip_loss", hint="not math.exp"),
    "siglip_loss: no L2 normalisation": Variant({"siglip_loss": siglip_no_normalisation}, "test_siglip_loss",
                                                check="test_siglip_loss", hint="leaving the embeddings unnormalised"),
    "TwoTower: stores 1/0.07 instead of its log": Variant(_ns("TwoTower", make_two_tower_scale_not_log), "test_two_tower",
                                                          check="test_two_tower", hint="storing 1/0.07 itself"),
    "TwoTower: embeddings not normalised": Variant(_ns("TwoTower", make_two_tower_unnormalised), "test_two_tower",
                                                   check="test_two_tower", hint="leaving out the normalisation"),
    "TwoTower: projections with a bias": Variant(_ns("TwoTower", make_two_tower_with_bias), "test_two_tower",
                                                 check="test_two_tower", hint="bias=False"),
    "TwoTower: logit_scale a plain tensor": Variant(_ns("TwoTower", make_two_tower_plain_tensor), "test_two_tower",
                                                    check="test_two_tower", hint="nn.Parameter"),
    "pixel_shuffle: consecutive tokens": Variant({"pixel_shuffle_tokens": shuffle_consecutive}, "test_pixel_shuffle",
                                                 check="test_pixel_shuffle", hint="4 consecutive tokens"),
    "pixel_shuffle: columns first": Variant({"pixel_shuffle_tokens": shuffle_columns_first}, "test_pixel_shuffle",
                                            check="test_pixel_shuffle", hint="column by column"),
    "pixel_shuffle: square grids only": Variant({"pixel_shuffle_tokens": shuffle_square_only}, "test_pixel_shuffle",
                                                check="test_pixel_shuffle", hint="h != w allowed"),
    "pixel_shuffle: grid read as (w, h)": Variant({"pixel_shuffle_tokens": shuffle_width_first}, "test_pixel_shuffle",
                                                  check="test_pixel_shuffle", hint="h rows and w columns"),
    "pixel_shuffle: no ValueError": Variant({"pixel_shuffle_tokens": shuffle_no_check}, "test_pixel_shuffle",
                                            check="test_pixel_shuffle", hint="raise ValueError when N != h * w"),
    "Projector: tanh-approximated GELU": Variant(
        _ns("Projector", lambda cls: make_projector(cls, lambda x: F.gelu(x, approximate="tanh"))), "test_projector",
        check="test_projector", hint="the tanh approximation of GELU"),
    "Projector: ReLU": Variant(_ns("Projector", lambda cls: make_projector(cls, F.relu)), "test_projector",
                               check="test_projector", hint="ReLU instead of GELU"),
    "Projector: hidden width of the vision side": Variant(_ns("Projector", make_projector_hidden_in_dim), "test_projector",
                                                          check="test_projector", hint="linear_1 = nn.Linear(in_dim, out_dim)"),
    "insert_image_tokens: placeholder kept": Variant({"insert_image_tokens": insert_keeps_placeholder}, "test_projector",
                                                     check="test_projector", hint="replaced, not kept"),
    "insert_image_tokens: row 0's position for all": Variant({"insert_image_tokens": insert_first_row_position},
                                                            "test_projector", check="test_projector",
                                                            hint="the placeholder position of row 0"),
    "insert_image_tokens: row 0's image for all": Variant({"insert_image_tokens": insert_first_row_image}, "test_projector",
                                                          check="test_projector", hint="the image tokens of row 0"),
    "insert_image_tokens: no ValueError": Variant({"insert_image_tokens": insert_no_check}, "test_projector",
                                                  check="test_projector", hint="exactly one"),
    "tile_grid: first of equal grids wins": Variant({"internvl_tile_grid": tile_grid_first_wins}, "test_tile_grid",
                                                    check="test_tile_grid", hint="equally close to a square"),
    "tile_grid: (columns, rows)": Variant({"internvl_tile_grid": tile_grid_columns_first}, "test_tile_grid",
                                          check="test_tile_grid", hint="return (rows, columns)"),
    "tile_grid: 448 written into the tie rule": Variant({"internvl_tile_grid": tile_grid_fixed_448}, "test_tile_grid",
                                                        check="test_tile_grid", hint="uses the img_size given"),
    "tile_grid: min_tiles and max_tiles ignored": Variant({"internvl_tile_grid": tile_grid_all_counts}, "test_tile_grid",
                                                          check="test_tile_grid", hint="min_tiles <= rows * columns"),
    "token_count: CLS kept": Variant({"visual_token_count": count_keeps_cls}, "test_token_count",
                                     check="test_token_count", hint="class token is not passed on"),
    "token_count: no thumbnail": Variant({"visual_token_count": count_no_thumbnail}, "test_token_count",
                                         check="test_token_count", hint="plus the thumbnail"),
    "token_count: thumbnail for a single tile": Variant({"visual_token_count": count_thumbnail_always}, "test_token_count",
                                                        check="test_token_count", hint="one tile and no thumbnail"),
    "token_count: thumbnail flag ignored": Variant({"visual_token_count": count_thumbnail_flag_ignored}, "test_token_count",
                                                   check="test_token_count", hint="only when thumbnail is true"),
    "token_count: Qwen2-VL sides floored": Variant({"visual_token_count": count_qwen_floor}, "test_token_count",
                                                   check="test_token_count", hint="NEAREST multiple"),
    "token_count: Qwen2-VL without the 2x2 merge": Variant({"visual_token_count": count_qwen_unmerged}, "test_token_count",
                                                           check="test_token_count", hint="merged 2 x 2"),
    "token_count: Qwen2-VL without the min_pixels branch": Variant({"visual_token_count": count_qwen_no_min_pixels},
                                                                   "test_token_count", check="test_token_count",
                                                                   hint="below min_pixels"),
    "token_count: Qwen2-VL shrunk sides rounded to nearest": Variant({"visual_token_count": count_qwen_shrink_rounded},
                                                                     "test_token_count", check="test_token_count",
                                                                     hint="round each DOWN"),
}
