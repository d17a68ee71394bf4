# %% [markdown]
# # Chapter 2 — Position and the class token
#
# Chapter 1 turned an image into a sequence of patch tokens. Self-attention treats that sequence as a
# *set*: shuffle the patches and every output is shuffled the same way, nothing else changes. This
# chapter gives the tokens their positions, adds the class token that a ViT classifier reads its answer
# from, and then proves that without positions the order of the patches is invisible.
#
# **You will**
#
# 1. build fixed 2D sine-cosine position embeddings (`sincos_2d`, the MAE convention);
# 2. resize a position embedding to a new grid (`interpolate_pos_embed`), so one model reads 96 px
#    crops and 224 px images, and predict what resizing does to the geometry of the embedding;
# 3. build the ViT input: patch tokens, a learned class token and learned position embeddings (`Tokens`);
# 4. explain in writing what the class token and mean pooling each train;
# 5. shuffle each image's patches and put them back (`shuffle_patches`, `unshuffle_patches`, the step MAE
#    is built on), and use them to show that without positions the encoder cannot tell a shuffled image
#    from the original.

# %% [markdown]
# This notebook is the exercise of [Chapter 2 — Position and the class token](https://vit-from-scratch.github.io/vit-course/book/02-position.html)
# in the course's book: read the chapter first.
#
# **How it works.** Write your code where a cell says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` under it), then run the check cell right below: it tests your code at
# once, and when it fails its message names the likely mistake and how to fix it. A check that builds on
# an earlier exercise checks that one first. Answer the written questions in the cells that say
# `YOUR ANSWER HERE`: a person reads and grades them.
#
# **When the notebook is graded,** hidden checks run your code again with other sizes (odd and
# non-square ones too), other random seeds, `float64` inputs, and on PyTorch's `meta` device, which stands
# in for a GPU: a tensor created without `device=...` lands on the CPU and cannot be combined with inputs
# that live elsewhere. Code that fits only the visible examples loses those points.
#
# **Imports:** your answers may use Python's standard library, `torch`, `torchvision`, `numpy` and
# `einops`, besides what the notebook imports for you; these are installed wherever the notebook is
# graded, other packages may not be.
#
# **Time and points.** Top to bottom, the notebook runs in about 10 seconds on a two-core CPU
# (the set-up cell below gives PyTorch one CPU thread, the fastest choice for models this small).
# 20 points: 16 for code, 4 for written answers.

# %%
# Set-up. On Colab: install the course library, release 0.2.0 (Colab's own PyTorch is kept).
# Everywhere: check the release, then pick the device and the run budget.
import sys
if "google.colab" in sys.modules:
    print("Installing the course library vitcourse 0.2.0 ...")
    # %pip install -q "git+https://github.com/vit-from-scratch/vit-course@v0.2.0"
try:
    from vitcourse import env
except ImportError:
    raise SystemExit("The course library is not installed: on Colab check the internet connection and run this "
                     "cell again; elsewhere install it with pip install "
                     '"git+https://github.com/vit-from-scratch/vit-course@v0.2.0".') from None
env.check_version("0.2.0")
env.set_threads()

import math
import torch
import torch.nn.functional as F
from torch import nn
import matplotlib.pyplot as plt
from vitcourse import checks, data, env, viz
from vitcourse.models.patches import PatchEmbed
from vitcourse.models.vit import Block

DEVICE, BUDGET = env.device(), env.budget()
print(env.describe())


# %% [markdown]
# ## 1. Sine-cosine position embeddings
#
# A position embedding is a vector added to each patch token that depends only on where the patch is.
# The fixed 2D version used by MAE encodes the column with the first half of the channels and the row
# with the second half. For one coordinate $p$ and $d$ channels, with frequencies
# $\omega_i = 10000^{-i/(d/2)}$ for $i = 0, \dots, d/2 - 1$:
#
# $$
# \mathrm{emb}(p) = \big[\sin(p\,\omega_0), \dots, \sin(p\,\omega_{d/2-1}),\ \cos(p\,\omega_0), \dots, \cos(p\,\omega_{d/2-1})\big].
# $$
#
# A token at row $r$ and column $c$ gets $[\mathrm{emb}_{D/2}(c),\ \mathrm{emb}_{D/2}(r)]$: $D$ channels in all.
# Tokens are in the row-major order of chapter 1.
#
# ### Exercise 1 — `sincos_2d` (4 points)
#
# Return a `(h * w, embed_dim)` tensor of dtype `float32` for a grid given as an int or a pair `(h, w)`
# (`h` rows, `w` columns); `embed_dim` is a multiple of 4.

# %% nbgrader={"grade": false, "grade_id": "sincos_2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sincos_2d(embed_dim: int, grid_size) -> torch.Tensor:
    """(h*w, embed_dim): first half encodes the column, second half the row (MAE convention)."""
    ### BEGIN SOLUTION
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    d = embed_dim // 2
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))

    def emb_1d(pos):
        angles = pos.reshape(-1).double()[:, None] * omega[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([emb_1d(cols), emb_1d(rows)], dim=1).float()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sincos_2d", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from vitcourse.models import position as ref


def check_sincos():
    pe = sincos_2d(16, (2, 3))                             # 2 rows, 3 columns: 6 tokens
    checks.check_shape(pe, (6, 16), name="sincos_2d(16, (2, 3))", hint="one row per token, h * w of them")
    checks.check_dtype(pe, torch.float32, name="sincos_2d(16, (2, 3))",
                       hint="compute in float64 if you like, then convert the result with .float()")
    checks.check_close(pe[0], torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4),
                       name="the token at row 0, column 0",
                       hint="sin(0) = 0 and cos(0) = 1: sines first, then cosines, for the column and then the row")
    e = ref.sincos_2d(16, (2, 3))                          # columns in channels 0-7, rows in 8-15
    wide = ref.sincos_2d(32, (2, 3))                       # its first 4 frequencies are 10000^(-i/8)
    checks.check_close(pe, e, name="sincos_2d(16, (2, 3))", hint="omega_i = 10000^(-i / (d/2)) with d = embed_dim / 2 "
                       "channels per coordinate; the column in the first half, the row in the second",
                       mistakes={"the row in the first half and the column in the second": torch.cat([e[:, 8:], e[:, :8]], 1),
                                 "cosines before sines": e.reshape(6, 2, 2, 4).flip(2).reshape(6, 16),
                                 "a 3 x 2 grid instead of 2 x 3 (grid_size read as (columns, rows), or "
                                 "meshgrid with indexing='xy')": ref.sincos_2d(16, (3, 2)),
                                 "frequencies 10000^(-i/d) instead of 10000^(-i/(d/2))":
                                 torch.cat([wide[:, 0:4], wide[:, 8:12], wide[:, 16:20], wide[:, 24:28]], 1),
                                 "sines and cosines interleaved channel by channel":
                                 e.reshape(6, 2, 2, 4).transpose(2, 3).reshape(6, 16)})
    checks.check_close(sincos_2d(8, 3), ref.sincos_2d(8, 3), name="sincos_2d(8, 3), an int grid_size",
                       hint="an int grid_size n means an n x n grid")


checks.run(check_sincos, "Exercise 1 (sincos_2d)", hint="torch.meshgrid(torch.arange(h), torch.arange(w), "
           "indexing='ij') gives the row and the column of every token in row-major order")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed())
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for k in range(4):
    D, h = 4 * draw(4, 17), draw(1, 8)                    # 16 to 64 channels; wide and tall grids
    h, w = (h, h + draw(1, 4)) if k % 2 else (h + draw(1, 4), h)
    pe = sincos_2d(D, (h, w))
    checks.check_dtype(pe, torch.float32, name=f"sincos_2d({D}, ({h}, {w}))")
    checks.check_close(pe, ref.sincos_2d(D, (h, w)), name=f"sincos_2d({D}, ({h}, {w}))")
n = draw(2, 9)
_ = checks.check_close(sincos_2d(32, n), ref.sincos_2d(32, n), name=f"sincos_2d(32, {n})")
### END HIDDEN TESTS

# %% [markdown]
# Each token's embedding is a different pattern of waves. The dot product between two tokens'
# embeddings depends on how far apart they are, which is what makes these vectors useful to attention:

# %% tags=["demo"]
pe = sincos_2d(64, 8)
similarity = pe @ pe[27]                   # token 27 = row 3, column 3 of an 8x8 grid
fig, axes = plt.subplots(1, 2, figsize=(7, 3))
axes[0].imshow(pe.T.numpy(), aspect="auto", cmap="RdBu"); axes[0].set_xlabel("token"); axes[0].set_ylabel("channel")
axes[0].set_title("sincos_2d(64, 8)")
axes[1].imshow(similarity.reshape(8, 8).numpy(), cmap="viridis"); axes[1].set_title("similarity to the token at (3, 3)")
plt.tight_layout(); plt.show()


# %% [markdown]
# ## 2. Changing the resolution
#
# A learned position embedding has one row per patch of the grid it was trained on: 14 × 14 for a
# 224 px image at patch 16. A 96 px crop has a 6 × 6 grid. To feed it to the same model, treat the
# embedding as an image with $D$ channels and resize it: keep the rows of the prefix tokens as they are
# (the class token's row belongs to no place on the grid), reshape the rest to `(1, D, h, w)`, resize with
# `F.interpolate(..., mode="bicubic", antialias=True, align_corners=False)` (what timm does), and
# flatten back. DINO relies on this to read its small local crops (chapter 5).
#
# ### Exercise 2 — `interpolate_pos_embed` (4 points)
#
# `pos_embed` has shape `(1, num_prefix_tokens + h*w, D)`; return `(1, num_prefix_tokens + H*W, D)`,
# of the same dtype. Grids are ints or pairs `(rows, columns)`; `num_prefix_tokens` may be 0.

# %% nbgrader={"grade": false, "grade_id": "interpolate", "locked": false, "schema_version": 3, "solution": true, "task": false}
def interpolate_pos_embed(pos_embed, old_grid, new_grid, num_prefix_tokens=1):
    """Resize the patch part of a position embedding; prefix rows are kept as they are."""
    ### BEGIN SOLUTION
    h, w = (old_grid, old_grid) if isinstance(old_grid, int) else old_grid
    H, W = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    D = grid.shape[-1]
    grid = grid.reshape(1, h, w, D).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(H, W), mode="bicubic", antialias=True, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, H * W, D)
    return torch.cat([prefix, grid], dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_interpolate", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from vitcourse.models import position as ref


def resized(pos_embed, old, new, prefix=1, transpose=True, **options):
    """The patch part of pos_embed resized with F.interpolate(**options), for the mistakes the check names."""
    grid = pos_embed[:, prefix:]
    if transpose:
        out = F.interpolate(grid.reshape(1, *old, -1).permute(0, 3, 1, 2), size=new, **options).permute(0, 2, 3, 1)
    else:                                                  # reshaped both ways, channels and positions mixed
        out = F.interpolate(grid.reshape(1, -1, *old), size=new, **options)
    return torch.cat([pos_embed[:, :prefix], out.reshape(1, new[0] * new[1], -1)], dim=1)


def check_interpolate():
    torch.manual_seed(0)
    pe = torch.randn(1, 1 + 4 * 6, 8)                      # one prefix token, then a 4 x 6 grid (4 rows)
    small = interpolate_pos_embed(pe, (4, 6), (2, 3), num_prefix_tokens=1)
    checks.check_shape(small, (1, 1 + 2 * 3, 8), name="(4, 6) -> (2, 3) with one prefix token",
                       hint="keep the prefix rows and resize the h * w others to H * W")
    checks.check_close(small[:, 0], pe[:, 0], name="the prefix token's row", hint="prefix rows are copied, not resized")
    bicubic = dict(mode="bicubic", antialias=True, align_corners=False)
    checks.check_close(small, ref.interpolate_pos_embed(pe, (4, 6), (2, 3), 1), name="(4, 6) -> (2, 3), downsampling",
                       hint="F.interpolate(grid, size=(H, W), mode='bicubic', antialias=True, align_corners=False) on a "
                            "(1, D, h, w) grid, then back to (1, H * W, D)",
                       mistakes={"mode='bilinear'": resized(pe, (4, 6), (2, 3), **{**bicubic, "mode": "bilinear"}),
                                 "antialias=False": resized(pe, (4, 6), (2, 3), **{**bicubic, "antialias": False}),
                                 "align_corners=True": resized(pe, (4, 6), (2, 3), **{**bicubic, "align_corners": True}),
                                 "a reshape to (1, D, h, w) without a permute": resized(pe, (4, 6), (2, 3),
                                                                                      transpose=False, **bicubic),
                                 "grids read as (columns, rows)": resized(pe, (6, 4), (3, 2), **bicubic)})
    checks.check_close(interpolate_pos_embed(pe, (4, 6), (6, 9)), ref.interpolate_pos_embed(pe, (4, 6), (6, 9)),
                       name="(4, 6) -> (6, 9), upsampling",
                       mistakes={"align_corners=True": resized(pe, (4, 6), (6, 9), **{**bicubic, "align_corners": True}),
                                 "grids read as (columns, rows)": resized(pe, (6, 4), (9, 6), **bicubic)})
    checks.check_close(interpolate_pos_embed(pe, (4, 6), (4, 6)), pe, name="resizing to the same grid")
    for n in (0, 2):
        p = torch.randn(1, n + 3 * 3, 8)
        checks.check_close(interpolate_pos_embed(p, 3, 5, num_prefix_tokens=n), ref.interpolate_pos_embed(p, 3, 5, n),
                           name=f"3 -> 5 (int grids) with {n} prefix tokens",
                           hint="the first num_prefix_tokens rows are the prefix, whatever their number (0 too)")
    checks.check_dtype(interpolate_pos_embed(pe.double(), (4, 6), (2, 3)), torch.float64,
                       name="a float64 position embedding, resized")
    checks.check_on_meta(lambda: interpolate_pos_embed(torch.empty(1, 1 + 4 * 6, 8, device="meta"), (4, 6), (2, 3)),
                         name="interpolate_pos_embed", shape=(1, 7, 8))


checks.run(check_interpolate, "Exercise 2 (interpolate_pos_embed)",
           hint="split off the prefix rows, reshape the rest to (1, h, w, D), permute to (1, D, h, w), resize, undo")
### BEGIN HIDDEN TESTS
import timm.layers
g = torch.Generator().manual_seed(env.grading_seed() + 1)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
small, large = draw(2, 6), draw(7, 12)
cases = [(small, small + draw(1, 4), large, large + draw(1, 4)),    # upsampling, grids not square
         (large + draw(1, 4), large, small, small + draw(1, 4)),    # downsampling
         (small, large, large, small),                              # one side up, the other down
         (14, 14, 6, 6), (7, 9, 14, 12)]
for k, (h, w, H, W) in enumerate(cases):
    n, D = k % 3, draw(2, 33)
    pe = torch.randn(1, n + h * w, D, generator=g, dtype=torch.float64 if k == 4 else torch.float32)
    expected = timm.layers.resample_abs_pos_embed(pe, (H, W), (h, w), num_prefix_tokens=n)
    out = interpolate_pos_embed(pe, (h, w), (H, W), num_prefix_tokens=n)
    checks.check_close(out, expected, name=f"({h}, {w}) -> ({H}, {W}) with {n} prefix tokens, D={D}")
    checks.check_dtype(out, pe.dtype, name=f"a {pe.dtype} position embedding, resized")
    checks.check_close(out, ref.interpolate_pos_embed(pe, (h, w), (H, W), n), name=f"({h}, {w}) -> ({H}, {W})")
pe = torch.randn(1, 2 + 5 * 3, 4, generator=g)
_ = checks.check_close(interpolate_pos_embed(pe, (5, 3), (5, 3), 2), ref.interpolate_pos_embed(pe, (5, 3), (5, 3), 2),
                       name="(5, 3) -> (5, 3) with 2 prefix tokens")
### END HIDDEN TESTS

# %% [markdown]
# Resizing a smooth embedding keeps its structure. Here is channel 0 of a sin-cos embedding on a 14 × 14
# grid and the same channel after resizing to 6 × 6 and to 24 × 24:

# %% tags=["demo"]
pe = sincos_2d(64, 14)[None]
fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
for ax, g in zip(axes, [14, 6, 24]):
    resized_pe = interpolate_pos_embed(pe, 14, g, num_prefix_tokens=0)[0]
    ax.imshow(resized_pe[:, 0].reshape(g, g).numpy(), cmap="RdBu"); ax.set_title(f"{g} x {g}"); ax.axis("off")
plt.tight_layout(); plt.show()


# %% [markdown]
# ### Question 1 — predict, then run: resize or recompute?
#
# *Written answer, 2 points, scored by your instructor.*
#
# A model trained at 224 px with patch 16 (a 14 × 14 grid) is run at 448 px (28 × 28). Its embedding
# for the new grid can be made in two ways: resize the old one with your `interpolate_pos_embed`, or, for
# a sine-cosine embedding, compute `sincos_2d` for the 28 × 28 grid.
#
# Around the token at the centre of the grid, the embeddings of nearby tokens are the most similar to its
# own (the bright spot of the figure in section 1). **Predict**, before running the cell under the answer
# cell: how wide is that bright spot, in patches and as a share of the image's width, for (a) the 14 × 14
# original, (b) the resized 28 × 28 embedding and (c) the recomputed 28 × 28 one? Then run the cell, and
# explain what you see and which of the two embeddings keeps what the model learned about positions.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_resize_or_recompute", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Prediction**
#
# ### BEGIN SOLUTION
# Resizing treats the embedding as a picture: every vector stays at the same place in the image, and the
# picture gets twice as many pixels per side. So the bright spot of (b) covers the same share of the image
# as (a), twice as many patches. Recomputing gives position $p$ the same vector whatever the grid, so the
# spot of (c) has the same width in patches as (a), half the share of the image.
# ### END SOLUTION
#
# **What happened, and why**
#
# ### BEGIN SOLUTION
# The spot is 3 patches wide in (a), 7 in (b) and 3 in (c): 21%, 25% and 11% of the image's width. The
# resized embedding keeps the geometry the model was trained with: what was near in the image is still
# near, and every vector in it lies between vectors the model has seen. The recomputed one changes the
# scale (tokens half as far apart in the image now look as different as before) and gives the patches of
# the right and bottom halves positions 14 to 27, which the model never saw. Resizing keeps what the
# model learned; recomputing asks it to read a new coordinate system.
#
# **Rubric (2 points).** 0.5: a prediction written before running, with a reason. 0.5: the numbers read
# correctly: the resized spot is about twice as many patches (the same share of the image), the
# recomputed one the same number of patches (half the share). 1: the explanation: resizing keeps
# positions as places in the image, the scale and the vectors the model saw in training (0.5); recomputing
# changes the scale and produces positions never seen in training (0.5).
# ### END SOLUTION

# %% tags=["demo"]
def spot_width(pe, g):
    """Patches of the centre row whose similarity to the centre token is above half-way from median to peak."""
    row = (pe @ pe[(g // 2) * g + g // 2]).reshape(g, g)[g // 2]
    return int((row > (row.max() + row.median()) / 2).sum()), row


maps = {"(a) 14 x 14": (sincos_2d(64, 14), 14),
        "(b) resized to 28 x 28": (interpolate_pos_embed(sincos_2d(64, 14)[None], 14, 28, 0)[0], 28),
        "(c) recomputed, 28 x 28": (sincos_2d(64, 28), 28)}
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, (name, (emb, g)) in zip(axes, maps.items()):
    width, _ = spot_width(emb, g)
    print(f"{name:<24} bright spot {width} patches wide = {width / g:.0%} of the image's width")
    ax.imshow((emb @ emb[(g // 2) * g + g // 2]).reshape(g, g).numpy(), cmap="viridis")
    ax.set_title(name); ax.axis("off")
plt.tight_layout(); plt.show()


# %% [markdown]
# ## 3. The class token and learned positions
#
# The original ViT prepends one learned vector, the class token `[CLS]`, to the patch tokens and adds a
# learned position embedding to *all* $N + 1$ tokens (the class token included). After the encoder, the
# class token's output is the image's summary.
#
# ### Exercise 3 — `Tokens` (4 points)
#
# Complete the module that builds the encoder's input: `self.patch_embed` (given), a learned
# `self.cls_token` of shape `(1, 1, D)` and a learned `self.pos_embed` of shape `(1, N + 1, D)`, both
# initialised with `torch.randn(...) * 0.02`. `forward(images)` returns `(B, N + 1, D)`: class token
# first, then the patches, with the position embedding added to every token. Accept other image sizes
# (multiples of the patch size, not necessarily square) by resizing the patch part of `pos_embed` with
# your `interpolate_pos_embed`. Gradients must reach both parameters, and no tensor may be created on a
# fixed device inside `forward` (the checks run the module on the `meta` device).

# %% nbgrader={"grade": false, "grade_id": "tokens", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Tokens(nn.Module):
    """images (B, C, H, W) -> tokens (B, 1 + N, D): [CLS] + patch tokens, plus learned positions."""

    def __init__(self, img_size=32, patch_size=8, in_chans=3, embed_dim=64):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.grid = self.patch_embed.grid_size          # (rows, columns) of the grid at img_size
        ### BEGIN SOLUTION
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, self.patch_embed.num_patches + 1, embed_dim) * 0.02)
        ### END SOLUTION

    def forward(self, images):
        ### BEGIN SOLUTION
        x = self.patch_embed(images)
        grid = (images.shape[-2] // self.patch_embed.patch_size, images.shape[-1] // self.patch_embed.patch_size)
        pos = self.pos_embed if grid == self.grid else interpolate_pos_embed(self.pos_embed, self.grid, grid, 1)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + pos
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_tokens", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from vitcourse.models import position as ref


def check_tokens():
    torch.manual_seed(0)
    tok = Tokens(img_size=32, patch_size=8, in_chans=3, embed_dim=64)    # a 4 x 4 grid
    for name, shape in (("cls_token", (1, 1, 64)), ("pos_embed", (1, 1 + 16, 64))):
        param = getattr(tok, name)
        checks.check_true(isinstance(param, nn.Parameter), f"{name} must be an nn.Parameter (it is learned), got "
                          f"{type(param).__name__}", hint="wrap it: self.name = nn.Parameter(torch.randn(...) * 0.02)")
        checks.check_shape(param, shape, name=name, hint="one row for the class token, then one per patch")
        std = float(param.detach().std())
        checks.check_true(0.01 < std < 0.04, f"{name} should be initialised with torch.randn(...) * 0.02, its values "
                          f"have std {std:.3g}", hint="zeros give every image the same class token and no position")
    x = torch.rand(2, 3, 32, 32)
    cls, patches = tok.cls_token.detach().expand(2, -1, -1), tok.patch_embed(x).detach()
    pos = tok.pos_embed.detach()
    checks.check_close(tok(x), torch.cat([cls, patches], dim=1) + pos, name="Tokens on (2, 3, 32, 32) images",
                       hint="class token first, then the patches; add pos_embed to all N + 1 tokens",
                       mistakes={"the class token after the patches": torch.cat([patches, cls], dim=1) + pos,
                                 "no position embedding": torch.cat([cls, patches], dim=1)})
    x = torch.rand(1, 3, 48, 64)                                       # a 6 x 8 grid: other size, not square
    out = tok(x)
    checks.check_shape(out, (1, 1 + 6 * 8, 64), name="Tokens on a 48x64 image (a 6 x 8 grid)",
                       hint="resize the patch part of pos_embed to the new grid with your interpolate_pos_embed")
    cls, patches = cls[:1], tok.patch_embed(x).detach()
    checks.check_close(out, torch.cat([cls, patches], dim=1) + ref.interpolate_pos_embed(pos, (4, 4), (6, 8)),
                       name="Tokens on a 48x64 image (a 6 x 8 grid)", hint="the new grid is (H // P, W // P): rows first",
                       mistakes={"the grid taken as (W // P, H // P)":
                                 torch.cat([cls, patches], dim=1) + ref.interpolate_pos_embed(pos, (4, 4), (8, 6))})
    tok.zero_grad()
    (out * torch.randn(out.shape)).sum().backward()
    for name in ("cls_token", "pos_embed"):
        checks.check_grad_flows(getattr(tok, name), name=f"{name}, after a 48x64 image",
                                hint="use the parameters themselves in forward: no .data, .detach() or torch.no_grad()")
    meta = Tokens(img_size=16, patch_size=4, in_chans=2, embed_dim=8).to("meta")
    checks.check_on_meta(lambda: meta(torch.empty(2, 2, 16, 16, device="meta")), name="Tokens", shape=(2, 17, 8),
                         hint="create no tensor on a fixed device in forward: expand the parameters, or use "
                              "device=images.device")
    checks.check_on_meta(lambda: meta(torch.empty(2, 2, 8, 12, device="meta")), name="Tokens on a 8x12 image",
                         shape=(2, 7, 8), hint="create no tensor on a fixed device in forward")


checks.run(check_tokens, "Exercise 3 (Tokens)", after=[check_interpolate],
           hint="expand the class token to the batch: self.cls_token.expand(B, -1, -1)")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 2)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for k, C in enumerate((1, 2, 3)):
    P, D, n = draw(2, 6), 4 * draw(2, 9), draw(3, 6)      # built for an n x n grid
    tok = Tokens(img_size=n * P, patch_size=P, in_chans=C, embed_dim=D)
    checks.check_shape(tok.cls_token, (1, 1, D), name=f"cls_token of Tokens({n * P}, {P}, {C}, {D})")
    checks.check_shape(tok.pos_embed, (1, n * n + 1, D), name=f"pos_embed of Tokens({n * P}, {P}, {C}, {D})")
    checks.check_equal(len(list(tok.parameters())), 4, name="number of parameter tensors (the convolution's weight "
                       "and bias, cls_token, pos_embed)")
    with torch.no_grad():
        tok.pos_embed.normal_(generator=g); tok.cls_token.normal_(generator=g)
    for size in [(n * P, n * P), ((n - 1 - k % 2) * P, (n + 1 + k) * P)]:
        B, grid = draw(1, 4), (size[0] // P, size[1] // P)
        x = torch.randn(B, C, *size, generator=g)
        pos = ref.interpolate_pos_embed(tok.pos_embed, (n, n), grid, 1)
        expected = torch.cat([tok.cls_token.expand(B, -1, -1), tok.patch_embed(x)], dim=1) + pos
        out = tok(x)
        checks.check_close(out, expected, name=f"Tokens(img_size={n * P}, patch_size={P}, in_chans={C}, embed_dim={D}) "
                           f"on {tuple(x.shape)}")
        tok.zero_grad()
        (out * torch.randn(out.shape, generator=g)).sum().backward()
        for name in ("cls_token", "pos_embed"):
            grad = getattr(tok, name).grad
            checks.check_true(grad is not None and bool((grad[0, 0] != 0).any()) and bool((grad[0, -1] != 0).any()),
                              f"no gradient reached {name} on a {size[0]}x{size[1]} image")
meta = Tokens(img_size=12, patch_size=3, in_chans=1, embed_dim=4).to("meta")
out = checks.check_on_meta(lambda: meta(torch.empty(3, 1, 9, 15, device="meta")), name="Tokens", shape=(3, 16, 4))
### END HIDDEN TESTS

# %% [markdown]
# ## 4. One vector per image
#
# The encoder returns $N + 1$ vectors and a classifier wants one. Where that vector comes from decides how
# the loss reaches the rest of the network, so it is a choice made before training:
#
# - **The class token** (`global_pool="token"` in timm and in the course's `ViT`): the head reads token 0.
#   Its input is the same learned vector for every image and holds no pixels, so everything its output
#   knows about the image came through attention from the patch tokens, block after block. The gradient
#   of the loss enters the network through that one token and reaches the patches only along its attention
#   weights: the class token is a learned, content-dependent weighted pooling. The original ViT, DeiT and
#   CLIP's image encoder read it.
# - **The mean of the patch tokens** (`global_pool="avg"`): the head reads $\frac{1}{N}\sum_i z_i$, the
#   prefix tokens left out. Every patch output gets the same share of the gradient, $1/N$, whatever it
#   shows. A class token is not needed at all: timm's `class_token=False`, and in the original JAX code
#   `classifier="gap"` builds none.
#
# Both summaries ignore the order of the patches when there are no positions (the mean of a reordered set
# is the same mean), and both cost nothing next to the encoder. What differs is what training shapes.
# The library's `vitcourse.models.position.pool(tokens, global_pool, num_prefix_tokens)` computes either one.

# %% [markdown]
# ### Question 2 — which output did training shape?
#
# *Written answer, 2 points, scored by your instructor.*
#
# A ViT with a class token is trained to classify with `global_pool="avg"`: its head reads the mean of
# the patch outputs. A colleague then freezes the encoder, fits a new linear classifier on the class
# token's final output instead, and gets poor accuracy. (a) What gradient did the class token's final
# output receive from the loss during training, and what follows for what it holds? (b) Which vector
# should the new classifier read, and why? (c) In the same model, does the class token's *input* (the
# learned `cls_token`) receive a gradient? Answer each in one or two sentences.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_pooling", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# (a) None: with `"avg"` the head reads only the patch outputs, so the class token's output after the last
# block feeds nothing and its gradient is zero. Nothing asked it to summarise the image; it holds whatever
# the last block happens to compute for it.
#
# (b) The mean of the patch outputs (with the same final normalisation): that is the vector training
# shaped and the one the encoder's last block was trained to make useful. A probe must read the summary
# the model was trained with.
#
# (c) Yes, as long as there is more than one block: in the earlier blocks the patch tokens attend to the
# class token, so it influences the patch outputs, and the gradient reaches `cls_token` through that
# attention. It is trained as a helper of the patches, not as a summary.
#
# **Rubric (2 points).** (a) 0.75: no gradient (zero), because the loss does not read that output, so it
# was never trained to summarise. (b) 0.75: the mean of the patch outputs, because that is what the
# training loss shaped (0.25 for the right choice without the reason). (c) 0.5: yes, through the patch
# tokens' attention to it in the earlier blocks.
# ### END SOLUTION

# %% [markdown]
# ## 5. Without positions, order is invisible
#
# Self-attention and the MLP treat every token the same way, whatever its place in the sequence. So if
# we permute the patch tokens before a transformer block, its outputs come out permuted the same way
# (**permutation-equivariance**), and the class token's output does not change at all
# (**invariance**). Position embeddings break this symmetry, and that is their whole purpose.
#
# ### Exercise 4 — `shuffle_patches` and `unshuffle_patches` (4 points)
#
# Write `shuffle_patches(tokens, perm, num_prefix_tokens=1)`. `tokens` is `(B, P + N, D)`, with
# `P = num_prefix_tokens` prefix tokens in front (0 is allowed); `perm` is one permutation of
# `0, ..., N-1` used for every image, of shape `(N,)`, or one per image, of shape `(B, N)`. Patch token `i`
# of image `b` in the result is patch token `perm[b, i]` (or `perm[i]`) of the input; the prefix tokens
# stay in front, unchanged. Return a new tensor: `tokens` itself must not change.
#
# Then write `unshuffle_patches(tokens, perm, num_prefix_tokens=1)`, which puts shuffled patch tokens back
# where they came from: `unshuffle_patches(shuffle_patches(t, perm), perm)` equals `t`. MAE (chapter 6)
# is built on this pair: it shuffles each image's patches with its own random permutation, encodes the
# first quarter, and puts the tokens back in place before its decoder.
#
# Hint: to undo a permutation you need its inverse, the `inv` with `inv[perm[i]] = i`; PyTorch computes it
# without a loop. With one permutation per image, `torch.gather` along dim 1 reorders every image at once.

# %% nbgrader={"grade": false, "grade_id": "shuffle", "locked": false, "schema_version": 3, "solution": true, "task": false}
def shuffle_patches(tokens, perm, num_prefix_tokens=1):
    """(B, P + N, D) -> (B, P + N, D): patch token i of image b becomes patch token perm[b, i] (or perm[i])."""
    ### BEGIN SOLUTION
    prefix, patches = tokens[:, :num_prefix_tokens], tokens[:, num_prefix_tokens:]
    index = perm.expand(patches.shape[0], -1) if perm.ndim == 1 else perm      # (B, N)
    patches = patches.gather(1, index[..., None].expand(-1, -1, patches.shape[-1]))
    return torch.cat([prefix, patches], dim=1)
    ### END SOLUTION


def unshuffle_patches(tokens, perm, num_prefix_tokens=1):
    """Undo shuffle_patches(tokens, perm, num_prefix_tokens)."""
    ### BEGIN SOLUTION
    return shuffle_patches(tokens, perm.argsort(dim=-1), num_prefix_tokens)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_shuffle", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from vitcourse.models import position as ref


def check_shuffle():
    torch.manual_seed(0)
    tokens = torch.randn(2, 1 + 6, 4)                      # one prefix token, then 6 patches
    before = tokens.clone()
    perm = torch.tensor([2, 0, 1, 5, 3, 4])                # not its own inverse
    out = shuffle_patches(tokens, perm)
    checks.check_true(torch.equal(tokens, before), "shuffle_patches changed the tokens it was given",
                      hint="build a new tensor (indexing, gather, torch.cat) instead of writing into tokens")
    checks.check_shape(out, (2, 7, 4), name="shuffle_patches(tokens, perm)", hint="reorder along dim 1 only")
    checks.check_close(out, ref.shuffle_patches(tokens, perm), name="shuffle_patches(tokens, perm), one prefix token",
                       hint="patch token i of the result is patch token perm[i] of the input; the prefix token stays "
                            "in front",
                       mistakes={"the inverse permutation (patch i placed at position perm[i])":
                                 ref.unshuffle_patches(tokens, perm),
                                 "shuffling the prefix token with the patches":
                                 tokens[:, torch.cat([perm[:1], perm + 1])[:7]]},
                       inputs={"the tokens": tokens})
    per_image = torch.stack([perm, torch.tensor([5, 3, 0, 4, 1, 2])])   # one permutation per image, (2, 6)
    checks.check_close(shuffle_patches(tokens, per_image), ref.shuffle_patches(tokens, per_image),
                       name="shuffle_patches with one permutation per image (perm of shape (2, 6))",
                       hint="image b uses its own row perm[b]: torch.gather(patches, 1, index) with index of shape (B, N, D)",
                       mistakes={"the first image's permutation used for both": ref.shuffle_patches(tokens, perm)})
    for n in (0, 2):
        t = torch.randn(2, n + 5, 3)
        checks.check_close(shuffle_patches(t, perm[:5].argsort(), n), ref.shuffle_patches(t, perm[:5].argsort(), n),
                           name=f"shuffle_patches with {n} prefix tokens",
                           hint="the first num_prefix_tokens tokens stay in front, whatever their number (0 too)")
    shuffled = ref.shuffle_patches(tokens, perm)
    checks.check_close(unshuffle_patches(shuffled, perm), tokens, name="unshuffle_patches(shuffle_patches(tokens, perm), perm)",
                       hint="undo perm with its inverse inv, where inv[perm[i]] = i",
                       mistakes={"applying perm a second time instead of its inverse": ref.shuffle_patches(shuffled, perm)},
                       inputs={"the shuffled tokens": shuffled})
    shuffled = ref.shuffle_patches(tokens, per_image)
    checks.check_close(unshuffle_patches(shuffled, per_image), tokens,
                       name="unshuffle_patches with one permutation per image",
                       hint="invert each image's permutation: its own row, along the last dim")
    t = torch.randn(2, 2 + 6, 3)
    checks.check_close(unshuffle_patches(ref.shuffle_patches(t, per_image, 2), per_image, 2), t,
                       name="unshuffle_patches with 2 prefix tokens",
                       hint="the first num_prefix_tokens tokens stay in front, whatever their number (0 too)")
    checks.check_dtype(shuffle_patches(tokens.double(), per_image), torch.float64, name="shuffle_patches of float64 tokens")
    checks.check_dtype(unshuffle_patches(tokens.double(), per_image), torch.float64,
                       name="unshuffle_patches of float64 tokens")
    for fn in (shuffle_patches, unshuffle_patches):
        checks.check_on_meta(lambda fn=fn: fn(torch.empty(2, 7, 4, device="meta"), per_image.to("meta")),
                             name=fn.__name__, shape=(2, 7, 4),
                             hint="create new tensors on the device of tokens and perm (device=perm.device)")


checks.run(check_shuffle, "Exercise 4 (shuffle_patches, unshuffle_patches)",
           hint="the first num_prefix_tokens tokens (0 or more) stay in front; reorder the others along dim 1, with "
                "torch.gather(patches, 1, index) and an index of shape (B, N, D) when perm is (B, N); build the result "
                "from tokens itself (a tensor made with torch.zeros has a fixed dtype and device)")
### BEGIN HIDDEN TESTS
from vitcourse.models import vit as ref_vit
g = torch.Generator().manual_seed(env.grading_seed() + 4)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for n_prefix in (0, 1, 2, 3):
    B, N = draw(1, 4), draw(4, 13)
    t = torch.randn(B, n_prefix + N, draw(2, 9), generator=g, dtype=torch.float64 if n_prefix == 3 else torch.float32)
    before = t.clone()
    # one random permutation, or a cyclic shift (not its own inverse), or one permutation per image
    p = [torch.randperm(N, generator=g), torch.arange(N).roll(1),
         torch.stack([torch.randperm(N, generator=g) for _ in range(B)])][n_prefix % 3]
    checks.check_close(shuffle_patches(t, p, n_prefix), ref.shuffle_patches(t, p, n_prefix),
                       name=f"shuffle_patches of {tuple(t.shape)} with {n_prefix} prefix tokens, perm={p.tolist()}")
    checks.check_true(torch.equal(t, before), "shuffle_patches changed the tokens it was given")
    checks.check_close(unshuffle_patches(t, p, n_prefix), ref.unshuffle_patches(t, p, n_prefix),
                       name=f"unshuffle_patches of {tuple(t.shape)} with {n_prefix} prefix tokens, perm={p.tolist()}")
    checks.check_true(torch.equal(t, before), "unshuffle_patches changed the tokens it was given")
    checks.check_dtype(unshuffle_patches(t, p, n_prefix), t.dtype, name=f"unshuffle_patches of {t.dtype} tokens")
    enc = ref_vit.Block(t.shape[-1] * 2, 2).eval()
    x = torch.randn(B, n_prefix + N, t.shape[-1] * 2, generator=g)
    with torch.no_grad():
        checks.check_close(unshuffle_patches(enc(shuffle_patches(x, p, n_prefix)), p, n_prefix), enc(x), atol=1e-5,
                           name="unshuffle(block(shuffle(x))) versus block(x) for a reference block")
### END HIDDEN TESTS

# %% [markdown]
# Now the experiment this section promised. Shuffle the patch tokens (each image with its own
# permutation), run a transformer block, put the outputs back: without positions they are exactly the
# outputs for the unshuffled tokens, and the class token's output did not move. With a position embedding
# added after shuffling (the patches moved, the positions stayed), the class token's output changes.

# %% tags=["demo"]
torch.manual_seed(0)
block = Block(dim=16, num_heads=2).eval()
x = torch.randn(2, 1 + 16, 16)                            # a class token and 16 patch tokens per image
pos = torch.randn(1, 1 + 16, 16)                          # a position embedding
perm = torch.stack([torch.randperm(16) for _ in range(2)])
with torch.no_grad():
    patches_back = unshuffle_patches(block(shuffle_patches(x, perm)), perm)
    moved_with_pos = block(shuffle_patches(x, perm) + pos)[:, 0]
    print(f"without positions: |unshuffle(block(shuffle(x))) - block(x)| = {(patches_back - block(x)).abs().max():.1e}")
    print(f"without positions: change of the class token's output    = {(patches_back[:, 0] - block(x)[:, 0]).abs().max():.1e}")
    print(f"with positions:    change of the class token's output    = {(moved_with_pos - block(x + pos)[:, 0]).abs().max():.1e}")

# %% [markdown]
# The same fact seen on a photograph: a small untrained encoder (4 blocks) reads the cat and a shuffled
# cat. Without positions the class token's output is identical for both; with positions it differs.

# %% tags=["demo"]
torch.manual_seed(0)
cat = data.photo("chelsea", 64)[None]
tok = Tokens(img_size=64, patch_size=8, in_chans=3, embed_dim=32).eval()
with torch.no_grad():
    tok.pos_embed.copy_(torch.cat([torch.zeros(1, 1, 32), sincos_2d(32, 8)[None]], dim=1))
blocks = nn.Sequential(*[Block(32, 4) for _ in range(4)]).eval()
perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    no_pos = torch.cat([tok.cls_token, tok.patch_embed(cat)], dim=1)
    a, b = blocks(no_pos)[:, 0], blocks(shuffle_patches(no_pos, perm))[:, 0]
    c, d = blocks(no_pos + tok.pos_embed)[:, 0], blocks(shuffle_patches(no_pos, perm) + tok.pos_embed)[:, 0]
print(f"without positions: |CLS(cat) - CLS(shuffled cat)| = {(a - b).abs().max():.1e}")
print(f"with positions:    |CLS(cat) - CLS(shuffled cat)| = {(c - d).abs().max():.1e}")

# %% [markdown]
# ## Takeaways
#
# - Attention has no notion of order: without position information a ViT sees a bag of patches
#   (permutation-equivariant tokens, an invariant class token).
# - Position embeddings, learned (ViT, DeiT, DINOv2) or fixed sine-cosine (MAE), are added to the
#   tokens; resizing their grid with bicubic interpolation lets one model read other resolutions and keeps
#   each position at its place in the image.
# - The class token and the mean of the patch tokens are two different summaries, and the loss trains only
#   the one the head reads: choose the pooling before training and read the same one afterwards.
# - A permutation is undone by its inverse (`argsort`); `gather` applies one permutation per image.
#
# ## Go further: positions inside attention (2D RoPE)
#
# Not graded. **What to try:** instead of adding a vector to the tokens, rotate the queries and keys
# inside attention by angles that depend on each token's row and column (rotary position embeddings in
# 2D, as EVA-02 and DINOv3 use): split the head width into pairs of channels, give half of the pairs
# angles $r\,\omega_i$ and the other half $c\,\omega_i$, and rotate each pair of $q$ and $k$ by its angle
# before the scores $q k^\top$. **What to look for:** the score between two tokens then depends on their
# offset $(r - r', c - c')$ only, not on where they are, and nothing is resized when the grid grows.
# **How to tell that it worked:** move every token's position by the same offset (add 3 to all rows and
# 5 to all columns) and check that the attention scores do not change (to about 1e-5), while with your
# additive `sincos_2d` they do; and check that without any rotation your attention equals the one of
# chapter 3.
#
# Next: chapter 3 builds the attention and the blocks you used here, and trains a complete ViT.
