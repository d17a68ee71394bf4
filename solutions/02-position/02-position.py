# %% [markdown]
# # Chapter 2 — Position and the class token
#
# Chapter 1 turned an image into a sequence of patch tokens. Self-attention treats that sequence as a
# *set*: shuffle the patches and every output is shuffled the same way, nothing else changes. This
# chapter proves that, then gives the tokens their positions back and adds the class token that a ViT
# classifier reads its answer from.
#
# **You will**
#
# 1. build fixed 2D sine-cosine position embeddings (`sincos_2d`, the MAE convention);
# 2. resize a position embedding to a new grid (`interpolate_pos_embed`), so one model reads 96 px
#    crops and 224 px images;
# 3. build the ViT input: patch tokens, a learned class token and learned position embeddings (`Tokens`);
# 4. turn tokens into one vector per image (`pool`: class token or mean);
# 5. show that without positions the encoder cannot tell a shuffled image from the original
#    (`shuffle_patches`).

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
# 20 points, all for code.

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
pe = sincos_2d(16, (2, 3))
checks.check_shape(pe, (6, 16), name="sincos_2d(16, (2, 3))")
checks.check_close(pe[0], torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4), name="the token at row 0, column 0",
                   hint="sin(0) = 0 and cos(0) = 1: sines first, then cosines, for the column and then the row")
checks.check_close(pe[1, :8], pe[4, :8], name="column half of tokens (0, 1) and (1, 1)",
                   hint="the first half of the channels depends on the column only")
print("sincos_2d: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import position as ref
g = torch.Generator().manual_seed(env.grading_seed())
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for k in range(4):
    D, h = 4 * draw(4, 17), draw(1, 8)                    # 16 to 64 channels; wide and tall grids
    h, w = (h, h + draw(1, 4)) if k % 2 else (h + draw(1, 4), h)
    pe = sincos_2d(D, (h, w))
    checks.check_true(pe.dtype == torch.float32, f"sincos_2d should return float32, got {pe.dtype}",
                      hint="compute in float64 if you like, then convert the result with .float()")
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
pe = torch.randn(1, 1 + 14 * 14, 32)
small = interpolate_pos_embed(pe, 14, 6, num_prefix_tokens=1)
checks.check_shape(small, (1, 1 + 36, 32), name="14x14 -> 6x6 with one prefix token")
checks.check_close(small[:, 0], pe[:, 0], name="the class token's row", hint="prefix rows are copied, not resized")
checks.check_close(interpolate_pos_embed(pe, 14, 14), pe, name="resizing to the same grid")
print("interpolate_pos_embed: visible checks passed")
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
    checks.check_close(out, expected, name=f"({h}, {w}) -> ({H}, {W}) with {n} prefix tokens, D={D}",
                       hint="bicubic, antialias=True, align_corners=False, on a (1, D, h, w) tensor")
    checks.check_true(out.dtype == pe.dtype, f"a {pe.dtype} position embedding came back as {out.dtype}")
### END HIDDEN TESTS

# %% [markdown]
# Resizing a smooth embedding keeps its structure. Here is channel 0 of a sin-cos embedding on a 14 × 14
# grid and the same channel after resizing to 6 × 6 and to 24 × 24:

# %% tags=["demo"]
pe = sincos_2d(64, 14)[None]
fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
for ax, g in zip(axes, [14, 6, 24]):
    resized = interpolate_pos_embed(pe, 14, g, num_prefix_tokens=0)[0]
    ax.imshow(resized[:, 0].reshape(g, g).numpy(), cmap="RdBu"); ax.set_title(f"{g} x {g}"); ax.axis("off")
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
# fixed device inside `forward` (the hidden checks run the module on the `meta` device).

# %% nbgrader={"grade": false, "grade_id": "tokens", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Tokens(nn.Module):
    """images (B, C, H, W) -> tokens (B, 1 + N, D): [CLS] + patch tokens, plus learned positions."""

    def __init__(self, img_size=32, patch_size=8, in_chans=3, embed_dim=64):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.grid = self.patch_embed.grid_size
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
torch.manual_seed(0)
tok = Tokens(img_size=32, patch_size=8, in_chans=3, embed_dim=16)
x = torch.rand(2, 3, 32, 32)
out = tok(x)
checks.check_shape(out, (2, 17, 16), name="Tokens on (2, 3, 32, 32)")
checks.check_shape(tok.pos_embed, (1, 17, 16), name="pos_embed", hint="one row per patch plus one for the class token")
checks.check_close(out[:, 0], (tok.cls_token + tok.pos_embed[:, :1]).expand(2, -1, -1).reshape(2, 16),
                   name="token 0", hint="token 0 is the class token plus the first row of pos_embed")
checks.check_shape(tok(torch.rand(1, 3, 48, 64)), (1, 1 + 6 * 8, 16), name="Tokens on a 48x64 image")
print("Tokens: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import position as ref
g = torch.Generator().manual_seed(env.grading_seed() + 2)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
torch.manual_seed(env.grading_seed())
tok = Tokens(img_size=32, patch_size=4, in_chans=1, embed_dim=64)
for name in ("cls_token", "pos_embed"):
    param = getattr(tok, name)
    checks.check_true(isinstance(param, nn.Parameter),
                      f"{name} must be an nn.Parameter (it is learned), got {type(param).__name__}")
    std = float(param.detach().std())
    checks.check_true(0.01 < std < 0.04, f"{name} should be initialised with torch.randn(...) * 0.02, "
                      f"its values have std {std:.3g}")
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
                              f"no gradient reached {name} on a {size[0]}x{size[1]} image",
                              hint="use the parameters themselves in forward: no .data, .detach() or torch.no_grad()")
meta = Tokens(img_size=16, patch_size=4, in_chans=2, embed_dim=8).to("meta")
outs = checks.check_on_meta(lambda: [meta(torch.empty(2, 2, 16, 16, device="meta")),
                                     meta(torch.empty(2, 2, 8, 12, device="meta"))], name="Tokens",
                            hint="create no tensor on a fixed device in forward: expand the parameters, or use "
                                 "device=images.device")
checks.check_shape(outs[0], (2, 17, 8), name="Tokens on (2, 2, 16, 16) meta images")
_ = checks.check_shape(outs[1], (2, 7, 8), name="Tokens on (2, 2, 8, 12) meta images")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. One vector per image
#
# A classifier needs one vector per image. Two common choices:
#
# - **CLS pooling**: the output of the class token (the original ViT, DeiT, CLIP's image embedding);
# - **mean pooling**: the average of the patch tokens' outputs, prefix tokens excluded (used by many
#   later models; DINOv2 reports and uses both).
#
# ### Exercise 4 — `pool` (2 points)
#
# `pool(tokens, global_pool="token", num_prefix_tokens=1)`: `tokens` is `(B, T, D)`; `global_pool` is
# `"token"` (the class token) or `"avg"` (the mean of the patch tokens), the names timm's ViT uses for
# the same option. Raise a `ValueError` for another value. `num_prefix_tokens` (class token, registers, ...)
# may be any number, 0 included.

# %% nbgrader={"grade": false, "grade_id": "pool", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pool(tokens, global_pool="token", num_prefix_tokens=1):
    """(B, T, D) -> (B, D): the class token, or the mean of the patch tokens."""
    ### BEGIN SOLUTION
    if global_pool == "token":
        return tokens[:, 0]
    if global_pool == "avg":
        return tokens[:, num_prefix_tokens:].mean(dim=1)
    raise ValueError(f"unknown global_pool {global_pool!r}: use 'token' or 'avg'")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_pool", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
t = torch.randn(3, 1 + 10, 8)
checks.check_close(pool(t, "token"), t[:, 0], name="pool(tokens, 'token')")
checks.check_close(pool(t, "avg"), t[:, 1:].mean(1), name="pool(tokens, 'avg')", hint="leave the class token out of the mean")
checks.check_raises(lambda: pool(t, "max"), ValueError, name="pool(tokens, 'max')")
print("pool: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import position as ref
g = torch.Generator().manual_seed(env.grading_seed() + 3)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for n in (0, 1, 2, 5):
    dtype = torch.float64 if n == 2 else torch.float32
    t = torch.randn(draw(1, 4), n + draw(2, 9), draw(2, 9), generator=g, dtype=dtype)
    out = pool(t, "avg", n)
    checks.check_close(out, ref.pool(t, "avg", n), name=f"avg pooling of {tuple(t.shape)} with {n} prefix tokens")
    checks.check_true(out.dtype == t.dtype, f"pooling {t.dtype} tokens gave {out.dtype}")
    if n:
        checks.check_close(pool(t, "token", n), ref.pool(t, "token", n),
                           name=f"token pooling of {tuple(t.shape)} with {n} prefix tokens")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Without positions, order is invisible
#
# Self-attention and the MLP treat every token the same way, whatever its place in the sequence. So if
# we permute the patch tokens before a transformer block, its outputs come out permuted the same way
# (**permutation-equivariance**), and the class token's output does not change at all
# (**invariance**). Position embeddings break this symmetry, and that is their whole purpose.
#
# ### Exercise 5 — `shuffle_patches` (6 points)
#
# Write `shuffle_patches(tokens, perm, num_prefix_tokens=1)` that reorders the patch tokens of every
# image by the index tensor `perm` (length N) and leaves the prefix tokens in front, unchanged
# (`num_prefix_tokens` may be 0). Return a new tensor: `tokens` itself must not change. The graded cell
# then checks the two properties on a real transformer block, with and without your position embeddings.

# %% nbgrader={"grade": false, "grade_id": "shuffle", "locked": false, "schema_version": 3, "solution": true, "task": false}
def shuffle_patches(tokens, perm, num_prefix_tokens=1):
    """(B, P + N, D) -> (B, P + N, D): patch token i of the result is patch token perm[i] of the input."""
    ### BEGIN SOLUTION
    prefix, patches = tokens[:, :num_prefix_tokens], tokens[:, num_prefix_tokens:]
    return torch.cat([prefix, patches[:, perm]], dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_equivariance", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
block = Block(dim=16, num_heads=2).eval()
tok = Tokens(img_size=32, patch_size=8, in_chans=3, embed_dim=16).eval()
x = torch.rand(2, 3, 32, 32)
perm = torch.randperm(16)
with torch.no_grad():
    plain = torch.cat([tok.cls_token.expand(2, -1, -1), tok.patch_embed(x)], dim=1)   # no positions
    out, out_shuffled = block(plain), block(shuffle_patches(plain, perm))
checks.check_close(out_shuffled, shuffle_patches(out, perm), atol=1e-5, name="block(shuffled tokens)",
                   hint="without positions, shuffling the input shuffles the output the same way")
checks.check_close(out_shuffled[:, 0], out[:, 0], atol=1e-5, name="class token output after shuffling")
with torch.no_grad():
    original = block(plain + tok.pos_embed)[:, 0]
    moved = block(shuffle_patches(plain, perm) + tok.pos_embed)[:, 0]   # patches moved, positions stay
checks.check_true((original - moved).abs().max() > 1e-4,
                  "with position embeddings, shuffling the patches should change the class token's output")
print("shuffle_patches: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import vit as ref_vit
g = torch.Generator().manual_seed(env.grading_seed() + 4)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for n_prefix in (0, 1, 2, 3):
    N = draw(4, 13)
    t = torch.randn(draw(1, 4), n_prefix + N, 8, generator=g)
    before = t.clone()
    # a random permutation, or a cyclic shift (which is not its own inverse)
    p = torch.randperm(N, generator=g) if n_prefix % 2 else torch.arange(N).roll(1)
    expected = torch.cat([t[:, :n_prefix], t[:, n_prefix:][:, p]], dim=1)
    checks.check_close(shuffle_patches(t, p, n_prefix), expected,
                       name=f"shuffle_patches of {tuple(t.shape)} with {n_prefix} prefix tokens, perm={p.tolist()}",
                       hint="patch token i of the result is patch token perm[i] of the input")
    checks.check_true(torch.equal(t, before), "shuffle_patches changed the tokens it was given",
                      hint="build a new tensor (indexing, torch.cat) instead of writing into tokens")
    enc = ref_vit.Block(8, 2).eval()
    with torch.no_grad():
        checks.check_close(enc(shuffle_patches(t, p, n_prefix)), shuffle_patches(enc(t), p, n_prefix), atol=1e-5,
                           name="equivariance of a reference block")
### END HIDDEN TESTS

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
#   tokens; resizing their grid with bicubic interpolation lets one model read other resolutions.
# - The class token is a learned extra token whose output summarises the image; mean pooling over
#   patch tokens is the common alternative.
#
# Next: chapter 3 builds the attention and the blocks you used here, and trains a complete ViT.
