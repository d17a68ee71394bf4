# %% [markdown]
# # Chapter 1 — Images as token sequences
#
# A transformer reads a sequence of vectors. To use one on images, the Vision Transformer (ViT) cuts the
# image into small square **patches**, flattens each patch into a vector and projects it with one shared
# linear map. Everything else in this course sits on top of that step, so we build it carefully here.
#
# **You will**
#
# 1. cut images into patches and put them back (`patchify`, `unpatchify`);
# 2. build the patch embedding as a strided convolution (`PatchEmbed`) and convert its weight to and from
#    the matrix $E$ of the paper (`conv_weight_to_linear`, `linear_to_conv_weight`);
# 3. count the multiply-accumulates of a whole ViT forward pass (`vit_macs`) and check the count against
#    PyTorch's own FLOP counter;
# 4. answer two written questions: why the order inside a patch matters (and when it does not), and a
#    prediction about what a higher resolution costs, checked by running it.

# %% [markdown]
# This notebook is the exercise of [Chapter 1 — Images as token sequences](https://vit-from-scratch.github.io/vit-course/book/01-patches.html)
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
from torch import nn
from vitcourse import checks, data, env, flops, viz
from vitcourse.models.patches import num_tokens

DEVICE, BUDGET = env.device(), env.budget()
print(env.describe())

# %% [markdown]
# ## 1. An image is a grid of patches
#
# We work with a real photograph that ships with scikit-image: Chelsea the cat, resized to 224 × 224
# pixels. Tensors of images follow PyTorch's layout `(B, C, H, W)`: batch, channels, height, width.
#
# With a patch size of $P = 16$ the image is a $14 \times 14$ grid of patches. The figure numbers them in
# the order the transformer will read them: **row-major**, left to right, then top to bottom.

# %% tags=["demo"]
cat = data.photo("chelsea", img_size=224)          # (3, 224, 224), values in [0, 1]
print("image:", tuple(cat.shape))
viz.show_patch_grid(cat, patch_size=16);


# %% [markdown]
# ### Exercise 1 — `patchify` (4 points)
#
# Write `patchify(images, patch_size)` that turns `(B, C, H, W)` images into `(B, N, P*P*C)` patch
# vectors, where $N = (H/P)(W/P)$:
#
# - patches in **row-major grid order** (patch 1 is to the right of patch 0);
# - inside a patch, values in **(row, column, channel)** order: the channel index varies fastest, then the
#   column, then the row. This is the order MAE uses, and later chapters rely on it.
# - any number of channels, and images that are not square;
# - if $H$ or $W$ is not a multiple of $P$, raise a `ValueError` whose message names the image size and
#   the patch size (check the height and the width);
# - keep the input's `dtype` and device.
#
# Hint: `reshape` to `(B, C, H/P, P, W/P, P)`, `permute` the axes into the order you want, `reshape` again.
# Draw the axes on paper first; most bugs here are a wrong permutation that still gives the right shape.

# %% nbgrader={"grade": false, "grade_id": "patchify", "locked": false, "schema_version": 3, "solution": true, "task": false}
def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) images -> (B, N, P*P*C) patches, row-major grid, (row, col, channel) inside."""
    ### BEGIN SOLUTION
    B, C, H, W = images.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {P}")
    x = images.reshape(B, C, H // P, P, W // P, P)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, grid_row, grid_col, row, col, C)
    return x.reshape(B, (H // P) * (W // P), P * P * C)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_patchify", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from vitcourse.models import patches as ref


def check_patchify():
    images = torch.rand(2, 3, 16, 24)                      # a 2 x 3 grid of 8 x 8 patches: not square
    patches = patchify(images, 8)
    checks.check_shape(patches, (2, 6, 8 * 8 * 3), name="patchify of (2, 3, 16, 24) images, P=8")
    grid = images.reshape(2, 3, 2, 8, 3, 8)                # (B, C, grid_row, row, grid_col, col)
    checks.check_close(patches, ref.patchify(images, 8), name="patchify of (2, 3, 16, 24) images, P=8",
                       mistakes={"(channel, row, column) order inside a patch": grid.permute(0, 2, 4, 1, 3, 5).reshape(2, 6, -1),
                                 "(column, row, channel) order inside a patch": grid.permute(0, 2, 4, 5, 3, 1).reshape(2, 6, -1),
                                 "a column-major grid (patch 1 below patch 0)": grid.permute(0, 4, 2, 3, 5, 1).reshape(2, 6, -1),
                                 "a reshape without a permute": images.reshape(2, 6, -1)},
                       hint="patch 1 is the right-hand neighbour of patch 0; inside a patch the channel varies "
                            "fastest, then the column, then the row")
    grey = torch.rand(1, 1, 8, 12)
    checks.check_close(patchify(grey, 4), ref.patchify(grey, 4), name="patchify of one-channel (1, 1, 8, 12) images, P=4",
                       hint="read the number of channels from images.shape: images are not always RGB")
    for H, W in ((30, 32), (32, 30)):                      # the height, then the width
        error = checks.check_raises(lambda H=H, W=W: patchify(torch.zeros(1, 3, H, W), 16), ValueError,
                                    name=f"patchify on a {H}x{W} image with patch size 16",
                                    hint="check both the height and the width")
        checks.check_true("30" in str(error) and "16" in str(error),
                          f"the error for a {H}x{W} image should name the image size and the patch size, got "
                          f"{str(error)!r}")
    checks.check_dtype(patchify(images.double(), 8), torch.float64, name="patchify of float64 images",
                       hint="reshape and permute keep the dtype: no conversion is needed")
    out = checks.check_on_meta(lambda: patchify(torch.empty(2, 3, 8, 12, device="meta"), 4), name="patchify",
                               shape=(2, 6, 48), hint="create no tensor on a fixed device: reshape and permute only, "
                                                      "or device=images.device")
    checks.check_true(out is not None, "patchify cannot run on images that live on another device (meta stands in "
                      "for a GPU): a tensor made with torch.zeros(...) or torch.empty(...) sits on the CPU",
                      hint="create no tensor on a fixed device: reshape and permute only, or device=images.device")


checks.run(check_patchify, "Exercise 1 (patchify)",
           hint="take every size, the number of channels included, from images.shape: B, C, H, W = images.shape, "
                "then reshape to (B, C, H/P, P, W/P, P)")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed())
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for C in (1, 2, 3, 4, 5):                     # every channel count; wide and tall grids; P from 1 to 8
    P, h = draw(1, 9), draw(1, 5)
    h, w = (h, h + draw(1, 4)) if C % 2 else (h + draw(1, 4), h)
    x = torch.randn(draw(1, 4), C, h * P, w * P, generator=g)
    checks.check_close(patchify(x, P), ref.patchify(x, P), name=f"patchify on {tuple(x.shape)}, P={P}")
x = torch.randn(2, 3, 12, 20, generator=g, dtype=torch.float64)
checks.check_dtype(patchify(x, 4), torch.float64, name="patchify of float64 images")
P = draw(3, 10)
for H, W, bad in ((3 * P, 2 * P + 1, 2 * P + 1), (2 * P + 1, 3 * P, 2 * P + 1)):  # the width, then the height
    for fn in (patchify, ref.patchify):
        error = checks.check_raises(lambda fn=fn, H=H, W=W: fn(torch.zeros(1, 2, H, W), P), ValueError,
                                    name=f"patchify on a {H}x{W} image with patch size {P}")
        checks.check_true(str(bad) in str(error) and str(P) in str(error),
                          f"the error for a {H}x{W} image and patch size {P} should name both, got {str(error)!r}")
out = checks.check_on_meta(lambda: patchify(torch.empty(3, 2, 12, 8, device="meta"), 2), name="patchify",
                           shape=(3, 24, 8))
_ = checks.check_true(out is not None, "patchify cannot run on images on the meta device")
### END HIDDEN TESTS

# %% [markdown]
# The transformer never sees the grid: it sees the sequence below, one flattened patch per row. Reading
# the strip left to right is reading the cat row by row.

# %% tags=["demo"]
cat_patches = patchify(cat[None], 16)[0]          # (196, 768)
print("sequence:", tuple(cat_patches.shape))
viz.show_patch_sequence(cat_patches, patch_size=16, channels=3, max_patches=42);


# %% [markdown]
# ### Exercise 2 — `unpatchify` (2 points)
#
# Write the inverse, `unpatchify(patches, patch_size, img_size)`, with `img_size` either `H` (a square
# image) or a pair `(H, W)`; the number of channels follows from the patch width $P^2 C$. Later chapters
# use it to turn a model's per-patch predictions back into a picture (MAE).

# %% nbgrader={"grade": false, "grade_id": "unpatchify", "locked": false, "schema_version": 3, "solution": true, "task": false}
def unpatchify(patches: torch.Tensor, patch_size: int, img_size) -> torch.Tensor:
    """(B, N, P*P*C) patches -> (B, C, H, W) images; inverse of patchify."""
    ### BEGIN SOLUTION
    H, W = (img_size, img_size) if isinstance(img_size, int) else img_size
    P = patch_size
    B, N, D = patches.shape
    C = D // (P * P)
    x = patches.reshape(B, H // P, W // P, P, P, C)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, grid_row, row, grid_col, col)
    return x.reshape(B, C, H, W)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_unpatchify", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def check_unpatchify():
    images = torch.rand(2, 3, 16, 24)
    patches = patchify(images, 8)                          # (2, 6, 192): a 2 x 3 grid
    grid = patches.reshape(2, 2, 3, 8, 8, 3)               # (B, grid_row, grid_col, row, col, C)
    checks.check_close(unpatchify(patches, 8, (16, 24)), images, name="unpatchify(patchify(images, 8), 8, (16, 24))",
                       mistakes={"swapping the rows and columns inside each patch":
                                 grid.permute(0, 5, 1, 4, 2, 3).reshape(2, 3, 16, 24)},
                       hint="undo patchify's steps in reverse order: reshape to (B, H/P, W/P, P, P, C), permute the "
                            "axes back to (B, C, H/P, P, W/P, P), reshape to (B, C, H, W)")
    square = torch.rand(1, 3, 8, 8)
    checks.check_close(unpatchify(patchify(square, 4), 4, 8), square, name="unpatchify with an int img_size (8)",
                       hint="img_size may be one int (a square image) or a pair (H, W)")
    grey = torch.rand(1, 1, 8, 12)
    checks.check_close(unpatchify(patchify(grey, 4), 4, (8, 12)), grey, name="unpatchify of one-channel patches",
                       hint="C = P*P*C // (P*P): read the patch width from patches.shape")
    checks.check_dtype(unpatchify(patches.double(), 8, (16, 24)), torch.float64, name="unpatchify of float64 patches")
    out = checks.check_on_meta(lambda: unpatchify(torch.empty(2, 6, 48, device="meta"), 4, (8, 12)), name="unpatchify",
                               shape=(2, 3, 8, 12), hint="reshape and permute only, or device=patches.device")
    checks.check_true(out is not None, "unpatchify cannot run on patches on the meta device (a stand-in for a GPU)",
                      hint="create no tensor on a fixed device: reshape and permute only")


checks.run(check_unpatchify, "Exercise 2 (unpatchify)", after=[check_patchify],
           hint="take H and W from img_size (an int means a square image) and C from the patch width, never from "
                "the number of patches")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 1)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for C in (1, 2, 3, 4, 5):                     # every channel count; wide and tall images
    P, h = draw(1, 9), draw(1, 5)
    h, w = (h, h + draw(1, 4)) if C % 2 else (h + draw(1, 4), h)
    p = torch.randn(draw(1, 4), h * w, P * P * C, generator=g)
    checks.check_close(unpatchify(p, P, (h * P, w * P)), ref.unpatchify(p, P, (h * P, w * P)),
                       name=f"unpatchify to {h * P}x{w * P}, P={P}, C={C}")
    s = min(h, w)
    checks.check_close(unpatchify(p[:, : s * s], P, s * P), ref.unpatchify(p[:, : s * s], P, s * P),
                       name=f"unpatchify with an int img_size {s * P}, P={P}, C={C}")
p = torch.randn(2, 6, 48, generator=g, dtype=torch.float64)
checks.check_dtype(unpatchify(p, 4, (8, 12)), torch.float64, name="unpatchify of float64 patches")
out = checks.check_on_meta(lambda: unpatchify(torch.empty(3, 6, 32, device="meta"), 2, (4, 6)), name="unpatchify",
                           shape=(3, 8, 4, 6))
_ = checks.check_true(out is not None, "unpatchify cannot run on patches on the meta device")
### END HIDDEN TESTS

# %% [markdown]
# Why does the order matter so much? Shuffle the patches and put them back: every patch is intact, yet
# the picture is gone. A transformer without position information sees exactly this — a bag of patches.
# Chapter 2 gives the tokens their positions back.

# %% tags=["demo"]
shuffled = cat_patches[torch.randperm(196, generator=torch.Generator().manual_seed(0))]
viz.show_images(torch.stack([unpatchify(cat_patches[None], 16, 224)[0],
                             unpatchify(shuffled[None], 16, 224)[0]]),
                titles=["unpatchify(patchify(cat))", "same patches, shuffled"], ncols=2, size=3);


# %% [markdown]
# ## 2. How many tokens?
#
# The patch grid is what a convolution with kernel and stride $P$ produces: one patch per full
# $P \times P$ square, and the pixels past the last full square in a row or a column are dropped. Then
# come the **prefix tokens**: a ViT classifier prepends one learned `[CLS]` token, and some models add
# *register* tokens (chapter 8). The library's `num_tokens(height, width, patch_size, class_token=True,
# num_registers=0)` counts them; you will need the same count inside Exercise 5.
#
# Token counts grow with the square of the resolution. The table shows the sequence length for a few
# resolutions and the patch sizes in common use (with `[CLS]`):

# %% tags=["demo"]
sizes, patch_sizes = [224, 336, 448, 518, 1024], [32, 16, 14, 8]
print("pixels | " + " | ".join(f"P={p:>2}" for p in patch_sizes))
for s in sizes:
    print(f"{s:>6} | " + " | ".join(f"{num_tokens(s, s, p):>4}" for p in patch_sizes))

# %% [markdown]
# A common claim is that going from 224 to 1024 pixels at patch 16 means "16x the FLOPs and 256x the
# memory". Let us check it. The cell below prints how the sequence and the attention matrix (tokens
# squared) grow; how much the *compute* grows we will measure in section 4.

# %% tags=["demo"]
t224, t1024 = num_tokens(224, 224, 16), num_tokens(1024, 1024, 16)
print(f"tokens: {t224} -> {t1024}  ({t1024 / t224:.1f}x)")
print(f"attention matrix entries per head: {t224**2:,} -> {t1024**2:,}  ({(t1024 / t224) ** 2:.0f}x)")


# %% [markdown]
# ## 3. The patch embedding is a strided convolution
#
# Each flattened patch $x_p \in \mathbb{R}^{P^2 C}$ is mapped to a token $x_p E + b$ with
# $E \in \mathbb{R}^{P^2 C \times D}$. Implementations (timm, torchvision, the original JAX code) compute
# this with a single `Conv2d(C, D, kernel_size=P, stride=P)`: the kernel visits every patch exactly once
# and computes the same dot products.
#
# ### Exercise 3 — `PatchEmbed` (4 points)
#
# Write the module: a `Conv2d` stored as `self.proj`, and a `forward` that maps `(B, C, H, W)` to tokens
# `(B, N, D)` in row-major grid order. If the image height or width is not a multiple of the patch size,
# raise a `ValueError` naming both numbers.

# %% nbgrader={"grade": false, "grade_id": "patch_embed", "locked": false, "schema_version": 3, "solution": true, "task": false}
class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, N, D) with one Conv2d(C, D, kernel_size=P, stride=P)."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768):
        super().__init__()
        self.patch_size = patch_size
        ### BEGIN SOLUTION
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        H, W = x.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {self.patch_size}")
        return self.proj(x).flatten(2).transpose(1, 2)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_patch_embed", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from vitcourse.models import patches as ref


def check_conv(embed, P, C, D):
    conv = embed.proj
    checks.check_true(isinstance(conv, nn.Conv2d), f"PatchEmbed({P}, {C}, {D}).proj should be an nn.Conv2d, got "
                      f"{type(conv).__name__}")
    checks.check_equal((conv.in_channels, conv.out_channels, tuple(conv.kernel_size), tuple(conv.stride),
                        conv.bias is not None), (C, D, (P, P), (P, P), True),
                       name=f"PatchEmbed({P}, {C}, {D}).proj as (in_channels, out_channels, kernel_size, stride, "
                            "has a bias)",
                       hint="nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)")


def check_patch_embed():
    torch.manual_seed(0)
    embed = PatchEmbed(patch_size=8, in_chans=3, embed_dim=16)
    check_conv(embed, 8, 3, 16)
    check_conv(PatchEmbed(patch_size=4, in_chans=1, embed_dim=8), 4, 1, 8)
    x = torch.rand(2, 3, 16, 24)                           # a 2 x 3 grid: not square
    theirs = ref.PatchEmbed((16, 24), 8, 3, 16)
    theirs.proj.load_state_dict(embed.proj.state_dict())
    grid = embed.proj(x).detach()                          # (B, D, grid_rows, grid_cols)
    checks.check_close(embed(x), theirs(x), name="PatchEmbed(8, 3, 16) on (2, 3, 16, 24) images",
                       mistakes={"a reshape(B, N, D) of the (B, D, h, w) convolution output": grid.reshape(2, 6, 16),
                                 "tokens in column-major grid order": grid.permute(0, 3, 2, 1).reshape(2, 6, 16)},
                       hint="flatten the grid, then move D last: (B, D, h, w) -> (B, D, N) with flatten(2) -> (B, N, D) "
                            "with transpose(1, 2)")
    for H, W in ((100, 96), (96, 100)):                    # the height, then the width
        checks.check_raises(lambda H=H, W=W: embed(torch.rand(1, 3, H, W)), ValueError,
                            name=f"PatchEmbed(8, ...) on a {H}x{W} image", hint="check both the height and the width")
    checks.check_dtype(PatchEmbed(4, 2, 8).double()(torch.rand(2, 2, 8, 12, dtype=torch.float64)), torch.float64,
                       name="a float64 PatchEmbed on float64 images")
    checks.check_on_meta(lambda: PatchEmbed(4, 2, 8).to("meta")(torch.empty(2, 2, 8, 12, device="meta")),
                         name="PatchEmbed", shape=(2, 6, 8), hint="create no tensor on a fixed device in forward")


checks.run(check_patch_embed, "Exercise 3 (PatchEmbed)",
           hint="self.proj(x) is (B, D, H/P, W/P): flatten(2) and transpose(1, 2) make it (B, N, D)")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 3)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for C in (1, 2, 4):
    P, D, h = draw(2, 9), draw(4, 33), draw(1, 5)
    h, w = (h, h + draw(1, 3)) if C % 2 else (h + draw(1, 3), h)
    mine, theirs = PatchEmbed(P, C, D), ref.PatchEmbed((h * P, w * P), P, C, D)
    check_conv(mine, P, C, D)
    theirs.proj.load_state_dict(mine.proj.state_dict())
    x = torch.randn(draw(1, 4), C, h * P, w * P, generator=g)
    checks.check_close(mine(x), theirs(x), name=f"PatchEmbed(P={P}, C={C}, D={D}) on {tuple(x.shape)}")
    for module in (mine, theirs):
        checks.check_raises(lambda m=module, C=C, h=h, w=w, P=P: m(torch.zeros(1, C, h * P, w * P + 1)), ValueError,
                            name=f"PatchEmbed(P={P}) on a {h * P}x{w * P + 1} image")
        checks.check_raises(lambda m=module, C=C, h=h, w=w, P=P: m(torch.zeros(1, C, h * P + 1, w * P)), ValueError,
                            name=f"PatchEmbed(P={P}) on a {h * P + 1}x{w * P} image")
x = torch.randn(2, 2, 8, 12, generator=g, dtype=torch.float64)
checks.check_dtype(PatchEmbed(4, 2, 8).double()(x), torch.float64, name="a float64 PatchEmbed on float64 images")
out = checks.check_on_meta(lambda: PatchEmbed(2, 3, 5).to("meta")(torch.empty(3, 3, 4, 6, device="meta")),
                           name="PatchEmbed", shape=(3, 6, 5))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4 — the convolution and the matrix $E$ (2 points)
#
# The convolution's weight has shape `(D, C, P, P)`; the paper writes the same map as a matrix
# $E \in \mathbb{R}^{P^2 C \times D}$ applied to patch vectors on the right, $x_p E$. Write both conversions:
#
# - `conv_weight_to_linear(weight)` returns the matrix `W` of shape `(D, P*P*C)` (the layout of an
#   `nn.Linear` weight, which is $E^\top$) whose columns follow `patchify`'s (row, column, channel) order,
#   so that $\texttt{patchify}(x)\, W^\top + b = \texttt{PatchEmbed}(x)$;
# - `linear_to_conv_weight(E, patch_size)` goes the other way: from a matrix $E$ of shape `(P*P*C, D)` whose
#   rows follow that order, it returns the `(D, C, P, P)` weight of a convolution that computes
#   $\texttt{patchify}(x)\, E$. The original JAX checkpoints of ViT store their patch embedding in this
#   form (a `(P, P, C, D)` kernel, which is $E$ once its first three axes are flattened), so this is the
#   step that loads them into PyTorch.

# %% nbgrader={"grade": false, "grade_id": "conv_as_linear", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv_weight_to_linear(weight: torch.Tensor) -> torch.Tensor:
    """Conv weight (D, C, P, P) -> linear weight (D, P*P*C) in (row, col, channel) column order."""
    ### BEGIN SOLUTION
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
    ### END SOLUTION


def linear_to_conv_weight(E: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Matrix E (P*P*C, D), rows in (row, col, channel) order -> conv weight (D, C, P, P)."""
    ### BEGIN SOLUTION
    P, D = patch_size, E.shape[1]
    return E.T.reshape(D, P, P, -1).permute(0, 3, 1, 2)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_conv_as_linear", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch.nn.functional as F
from vitcourse.models import patches as ref


def check_conv_as_linear():
    torch.manual_seed(1)
    P, C, D = 4, 2, 8
    conv = nn.Conv2d(C, D, kernel_size=P, stride=P)
    weight = conv.weight.detach()
    W = conv_weight_to_linear(weight)
    checks.check_shape(W, (D, P * P * C), name="conv_weight_to_linear of a (8, 2, 4, 4) weight",
                       hint="W has the layout of an nn.Linear weight, (out, in) = (D, P*P*C): it is E.T, not E")
    checks.check_close(W, ref.conv_weight_to_linear(weight), name="conv_weight_to_linear of a (8, 2, 4, 4) weight",
                       mistakes={"a plain reshape, which keeps the weight's (channel, row, column) order":
                                 weight.reshape(D, -1),
                                 "the (column, row, channel) order": weight.permute(0, 3, 2, 1).reshape(D, -1)},
                       hint="move the channel axis last, (D, C, P, P) -> (D, P, P, C), then flatten the last three")
    x = torch.rand(2, C, 8, 12)
    tokens = conv(x).detach().flatten(2).transpose(1, 2)   # what PatchEmbed computes
    checks.check_close(ref.patchify(x, P) @ W.T + conv.bias.detach(), tokens, name="patchify(x) @ W.T + b versus the "
                       "convolution")
    E = torch.randn(P * P * C, D)
    conv_weight = linear_to_conv_weight(E, P)
    checks.check_shape(conv_weight, (D, C, P, P), name="linear_to_conv_weight of a (32, 8) matrix E, P=4",
                       hint="E is (P*P*C, D): the convolution has D output channels and C input channels")
    checks.check_close(conv_weight, ref.linear_to_conv_weight(E, P), name="linear_to_conv_weight of a (32, 8) matrix E",
                       mistakes={"a reshape of E without transposing it first": E.reshape(D, C, P, P),
                                 "reading E's rows in (channel, row, column) order": E.T.reshape(D, C, P, P),
                                 "swapping the rows and columns of each kernel":
                                 E.T.reshape(D, P, P, C).permute(0, 3, 2, 1)},
                       hint="E.T is (D, P*P*C): unflatten its columns as (P, P, C), then move the channels to axis 1")
    checks.check_close(F.conv2d(x, conv_weight, stride=P).flatten(2).transpose(1, 2), ref.patchify(x, P) @ E,
                       name="the convolution with linear_to_conv_weight(E) versus patchify(x) @ E")
    checks.check_dtype(conv_weight_to_linear(weight.double()), torch.float64, name="conv_weight_to_linear of a float64 "
                       "weight")
    checks.check_dtype(linear_to_conv_weight(E.double(), P), torch.float64, name="linear_to_conv_weight of a float64 E")
    checks.check_on_meta(lambda: conv_weight_to_linear(torch.empty(8, 2, 4, 4, device="meta")),
                         name="conv_weight_to_linear", shape=(8, 32))
    checks.check_on_meta(lambda: linear_to_conv_weight(torch.empty(32, 8, device="meta"), 4),
                         name="linear_to_conv_weight", shape=(8, 2, 4, 4))


checks.run(check_conv_as_linear, "Exercise 4 (conv_weight_to_linear, linear_to_conv_weight)",
           hint="take D and C from the tensor's shape; C = E.shape[0] // (P * P)")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 4)
for C in (1, 2, 3, 5):
    D, P = (int(v) for v in torch.randint(2, 9, (2,), generator=g))
    dtype = torch.float64 if C == 5 else torch.float32
    w = torch.randn(D, C, P, P, generator=g, dtype=dtype)
    checks.check_close(conv_weight_to_linear(w), ref.conv_weight_to_linear(w), name=f"weight {tuple(w.shape)}")
    checks.check_dtype(conv_weight_to_linear(w), dtype, name=f"conv_weight_to_linear of a {dtype} weight")
    E = torch.randn(P * P * C, D, generator=g, dtype=dtype)
    checks.check_close(linear_to_conv_weight(E, P), ref.linear_to_conv_weight(E, P),
                       name=f"linear_to_conv_weight of E {tuple(E.shape)}, P={P}")
    checks.check_dtype(linear_to_conv_weight(E, P), dtype, name=f"linear_to_conv_weight of a {dtype} matrix")
    checks.check_close(conv_weight_to_linear(linear_to_conv_weight(E, P)), E.T,
                       name=f"conv_weight_to_linear(linear_to_conv_weight(E)) versus E.T, E {tuple(E.shape)}")
### END HIDDEN TESTS

# %% [markdown]
# The two computations agree to rounding error on the cat as well; the convolution is simply the faster
# way to run the same linear map (it never materialises the patch matrix).

# %% tags=["demo"]
embed = PatchEmbed(patch_size=16, in_chans=3, embed_dim=768)
with torch.no_grad():
    by_conv = embed(cat[None])
    by_linear = patchify(cat[None], 16) @ conv_weight_to_linear(embed.proj.weight).T + embed.proj.bias
print("tokens:", tuple(by_conv.shape), "| max |conv - linear| =", f"{(by_conv - by_linear).abs().max():.2e}")


# %% [markdown]
# ### Question 1 — does the order inside a patch matter?
#
# *Written answer, 2 points, scored by your instructor.*
#
# Your `patchify` lays a patch out as (row, column, channel). A classmate's lays it out as (channel, row,
# column), with an `unpatchify` that matches. (a) Can a ViT whose first layer is a learned linear map of
# *their* patch vectors compute exactly the same functions as one built on yours? Say why in one or two
# sentences. (b) Name two situations in which mixing the two conventions gives wrong results without any
# error being raised.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_patch_order", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# (a) Yes. The two layouts hold the same $P^2 C$ numbers in another order: a fixed permutation $\Pi$ of the
# coordinates. A linear map with matrix $\Pi^\top E$ on their vectors computes exactly what $E$ computes on
# yours, and since $E$ is learned, training can reach either; the two models are the same family of
# functions (with an initialisation permuted the same way, even the same training run).
#
# (b) Whenever numbers made under one convention are read under the other; the shapes agree, so nothing
# fails. For example: loading a pretrained patch embedding (a convolution weight, or the $(P, P, C, D)$
# kernel of a JAX checkpoint) into a linear layer whose columns follow the other order, which is what
# `conv_weight_to_linear` must get right; turning MAE's per-patch pixel predictions or targets back into
# images with the other convention's `unpatchify` (chapter 6); exchanging patch vectors with another
# library.
#
# **Rubric (2 points).** (a) 1 point: "yes" because the two layouts differ by a fixed permutation that a
# learned linear map absorbs (permuted rows or columns of $E$); "yes" without the reason, 0.5; "no", 0.
# (b) 1 point: two concrete situations where values cross conventions (pretrained or converted weights,
# per-patch reconstruction targets or predictions turned back into images, patches exchanged with other
# code); 0.5 for one. An answer that claims training from scratch would be worse loses the point of (a).
# ### END SOLUTION


# %% [markdown]
# ## 4. What does a ViT forward pass cost?
#
# Almost all the work of a ViT is matrix multiplication. Counting **multiply-accumulates** (MACs: one
# multiplication plus one addition) for one image with $T$ tokens of width $D$, $N$ patches and MLP width
# $rD$:
#
# | part | MACs |
# | --- | --- |
# | patch embedding | $N \cdot P^2 C \cdot D$ |
# | per block: $q, k, v$ projections | $3 T D^2$ |
# | per block: scores $QK^\top$ | $T^2 D$ |
# | per block: weighted sum of values | $T^2 D$ |
# | per block: output projection | $T D^2$ |
# | per block: MLP | $2 r T D^2$ |
# | classifier head on `[CLS]` | $D K$ |
#
# LayerNorm, softmax, GELU and additions are left out: they are a fraction of a percent. One MAC is two
# floating-point operations, so **FLOPs = 2 × MACs**. Model tables and papers often say "FLOPs" for what
# are MACs; PyTorch's `FlopCounterMode` counts FLOPs.
#
# ### Exercise 5 — `vit_macs` (4 points)
#
# Write `vit_macs(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000, in_chans=3,
# class_token=True)` returning the total MACs of one forward pass for one square image, as an `int`.
# The MLP's hidden width is `int(embed_dim * mlp_ratio)`. The head reads one token; `num_classes=0` means
# no head. Without a class token the sequence holds the patches only (the head then reads their mean).

# %% nbgrader={"grade": false, "grade_id": "vit_macs", "locked": false, "schema_version": 3, "solution": true, "task": false}
def vit_macs(img_size: int, patch_size: int, embed_dim: int, depth: int, mlp_ratio: float = 4.0,
             num_classes: int = 1000, in_chans: int = 3, class_token: bool = True) -> int:
    """Multiply-accumulates of one ViT forward pass on one img_size x img_size image."""
    ### BEGIN SOLUTION
    N = (img_size // patch_size) ** 2
    T = N + int(class_token)
    D = embed_dim
    hidden = int(D * mlp_ratio)
    embed = N * patch_size * patch_size * in_chans * D
    block = 3 * T * D * D + 2 * T * T * D + T * D * D + 2 * T * D * hidden
    head = D * num_classes
    return embed + depth * block + head
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_vit_macs", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
import numbers
from vitcourse.models.vit import ViT


def measured(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000, in_chans=3, class_token=True):
    """MACs of the course's reference ViT with these options, counted by PyTorch's FlopCounterMode."""
    model = ViT(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim, depth=depth,
                num_heads=2, mlp_ratio=mlp_ratio, num_classes=num_classes, class_token=class_token,
                global_pool="token" if class_token else "avg")
    return flops.measured_macs(model, (1, in_chans, img_size, img_size))


def check_count(cfg, hint):
    got, want = vit_macs(**cfg), measured(**cfg)
    T, D, L = (cfg["img_size"] // cfg["patch_size"]) ** 2 + cfg["class_token"], cfg["embed_dim"], cfg["depth"]
    known = {"FLOPs instead of MACs (one MAC is one multiply and one add; count MACs)": 2 * want,
             "leaving out both attention products QK^T and AV": want - 2 * L * T * T * D,
             "counting only one of the two attention products (QK^T and the weighted sum AV)": want - L * T * T * D,
             "the head applied to every token instead of one": want + (T - 1) * D * cfg["num_classes"]}
    if got != want:
        named = [label for label, value in known.items() if got == value]
        checks.check_equal(got, want, name=f"vit_macs({', '.join(f'{k}={v}' for k, v in cfg.items())})",
                           hint=f"it is exactly what {named[0]} gives" if named else hint)


def check_vit_macs():
    base = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, mlp_ratio=4.0, num_classes=10, in_chans=3,
                class_token=True)
    check_count(base, hint="compare your count part by part with the table above")
    macs = vit_macs(**base)
    checks.check_true(isinstance(macs, numbers.Integral), f"vit_macs should return an int, got {type(macs).__name__} "
                      f"{macs!r}", hint="keep every term an int: the MLP width is int(embed_dim * mlp_ratio)")
    check_count({**base, "class_token": False}, hint="without a class token the sequence holds the N patches only: T = N")
    check_count({**base, "mlp_ratio": 2.5}, hint="the MLP's hidden width is int(embed_dim * mlp_ratio), not 4 * embed_dim")
    check_count({**base, "in_chans": 1}, hint="a patch holds P * P * in_chans values: the patch embedding reads in_chans "
                "channels")
    check_count({**base, "num_classes": 0}, hint="num_classes=0 means no head: its D * K term is 0")
    checks.check_equal(round(vit_macs(224, 16, 768, 12) / 1e9, 2), 17.56, name="ViT-B/16 GMACs at 224 px")


checks.run(check_vit_macs, "Exercise 5 (vit_macs)")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 5)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for k, (mlp_ratio, in_chans) in enumerate([(2.0, 1), (4.0, 3), (3.0, 4), (2.5, 2)]):
    P = [4, 8, 14, 16][draw(0, 4)]
    cfg = dict(img_size=P * draw(2, 8), patch_size=P, embed_dim=8 * draw(2, 9), depth=draw(2, 4),
               mlp_ratio=mlp_ratio, num_classes=draw(1, 20) * (k != 2), in_chans=in_chans, class_token=k % 2 == 1)
    macs = vit_macs(**cfg)
    checks.check_true(isinstance(macs, numbers.Integral), f"vit_macs should return an int, got {type(macs).__name__}")
    checks.check_equal(macs, measured(**cfg), name=f"vit_macs({cfg})")
### END HIDDEN TESTS

# %% [markdown]
# Now the famous table, computed rather than copied. Parameters come from building each model on PyTorch's
# `meta` device (no memory is allocated); MACs from your `vit_macs`, checked against PyTorch's counter for
# ViT-S/16.

# %% tags=["demo"]
zoo = {  # name: (patch, resolution, width, depth, heads)
    "ViT-S/16": (16, 224, 384, 12, 6), "ViT-B/16": (16, 224, 768, 12, 12),
    "ViT-L/14": (14, 224, 1024, 24, 16), "ViT-L/14@336": (14, 336, 1024, 24, 16),
    "ViT-H/14": (14, 224, 1280, 32, 16),
}
print(f"{'model':<13} {'tokens':>6} {'params':>8} {'GMACs':>7} {'GFLOPs':>7}")
for name, (p, res, dim, depth, heads) in zoo.items():
    with torch.device("meta"):
        model = ViT(img_size=res, patch_size=p, embed_dim=dim, depth=depth, num_heads=heads)
    macs = vit_macs(res, p, dim, depth)
    print(f"{name:<13} {num_tokens(res, res, p):>6} {flops.count_params(model) / 1e6:>7.1f}M "
          f"{macs / 1e9:>7.2f} {2 * macs / 1e9:>7.2f}")
with torch.device("meta"):
    vit_s = ViT(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6)
print("ViT-S/16 measured by FlopCounterMode:", f"{flops.measured_macs(vit_s, (1, 3, 224, 224)) / 1e9:.2f} GMACs")

# %% [markdown]
# Back to the 1024-pixel claim. With ViT-B/16 the compute grows far less than the attention matrix,
# because the projections and the MLP — most of the work at 224 px — grow only linearly with the tokens:

# %% tags=["demo"]
m224, m1024 = vit_macs(224, 16, 768, 12), vit_macs(1024, 16, 768, 12)
print(f"ViT-B/16: {m224 / 1e9:.1f} -> {m1024 / 1e9:.1f} GMACs per image ({m1024 / m224:.1f}x for {t1024 / t224:.1f}x the tokens)")

# %% [markdown]
# ### Question 2 — predict, then run: a small model at a high resolution
#
# *Written answer, 2 points, scored by your instructor.*
#
# Which needs more MACs per image: **ViT-S/16** (width 384, 12 blocks) reading 448 × 448 images, or
# **ViT-B/16** (width 768, 12 blocks) reading 224 × 224 images? ViT-S has a quarter of ViT-B's parameters.
#
# First write your prediction in the answer cell, with your reasoning, using only the table of
# section 4 (no code). Then run the cell under the answer cell, and explain what it prints, part by
# part: what happened to the projections and the MLP, and what happened to the two attention products?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_predict_resolution", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Prediction**
#
# ### BEGIN SOLUTION
# ViT-S/16 at 448 px reads 4x the tokens of ViT-B/16 at 224 px (785 against 197) with half the width.
# The projections and the MLP cost about $12\,T D^2$ per block: 4x the tokens times a quarter of $D^2$, so
# about the same as ViT-B at 224 px. The attention products cost $2 T^2 D$: 16x the token pairs times half
# the width, 8x ViT-B's. So the small model at the high resolution costs more, by about seven times
# ViT-B's attention cost.
# ### END SOLUTION
#
# **What happened, and why**
#
# ### BEGIN SOLUTION
# The cell prints about 22.6 GMACs for ViT-S/16 at 448 px against 17.6 for ViT-B/16 at 224 px. The
# projections and the MLP are 16.7 GMACs in both (4x the tokens, a quarter of the cost per token), the
# attention products 5.7 against 0.7 GMACs (about 8x), and the patch embedding doubles but stays small.
# Parameters do not measure compute: the number of tokens multiplies every per-token cost, and the
# attention products grow with its square.
#
# **Rubric (2 points).** 0.5: a prediction written before running, with a reason (right or wrong).
# 0.5: the projections and the MLP cost about the same in both (4x the tokens times a quarter of
# $D^2$). 0.5: the attention products are about 8x larger for ViT-S at 448 px (16x the pairs, half the
# width), which makes it the more expensive model. 0.5: the answer compares the outcome with the
# prediction and says what the prediction missed, if anything (e.g. "fewer parameters means less
# compute").
# ### END SOLUTION

# %% tags=["demo"]
from vitcourse.models.patches import vit_macs as macs_by_part   # the library's count, part by part
for name, (size, width) in {"ViT-S/16 at 448 px": (448, 384), "ViT-B/16 at 224 px": (224, 768)}.items():
    parts = macs_by_part(size, 16, width, 12)
    linear = parts["qkv"] + parts["proj"] + parts["mlp"]
    attention = parts["attn_scores"] + parts["attn_values"]
    print(f"{name}: {vit_macs(size, 16, width, 12) / 1e9:5.1f} GMACs = projections and MLP {linear / 1e9:4.1f} "
          f"+ attention products {attention / 1e9:3.1f} + patch embedding {parts['patch_embed'] / 1e9:3.1f}")

# %% [markdown]
# ## 5. Explore
#
# Move the sliders: resolution and patch size change the grid, the sequence length and the cost of a
# ViT-B forward pass. The sliders need a running Python kernel (Colab or Jupyter): on the book's static
# site this cell shows nothing. The reading page (linked at the top of this notebook) has a pre-drawn
# version of the same explorer, which works in the browser, in its section *Explore: resolution and patch
# size*.

# %% tags=["demo"]
from vitcourse import widgets
widgets.patch_explorer(cat)

# %% [markdown]
# ## Takeaways
#
# - A ViT reads an image as $\lfloor H/P \rfloor \lfloor W/P \rfloor$ patch tokens plus prefix tokens;
#   the order of patches (row-major) and of values inside a patch is a convention that must be kept
#   everywhere numbers cross from one piece of code to another.
# - The patch embedding is one linear map shared by all patches; a stride-$P$ convolution computes it, and
#   its weight and the paper's matrix $E$ hold the same numbers in another layout.
# - Compute is mostly matrix multiplication: projections and MLP grow linearly with the tokens, attention
#   quadratically. Tables that say "FLOPs" often mean MACs; one MAC is two FLOPs.
#
# ## Go further: where does attention take over?
#
# Not graded. **What to try:** change your `vit_macs` (a copy of it) to return its parts, and plot, for
# ViT-S, ViT-B and ViT-L at patch 16, the share of the forward pass spent in the two attention products
# as the resolution grows from 224 to 2048 px. Find, for each model, the resolution at which the
# attention products cost as much as the MLP. **What to look for:** the crossing point moves to higher
# resolutions as the width grows, because the MLP's cost per token grows with $D^2$ and the attention's
# with $T D$. **How to tell that it worked:** your parts add up to `flops.measured_macs` of the same model
# (as in the check of Exercise 5), and the crossing points agree with the one you can work out on paper
# by setting $2 T^2 D$ equal to $2 r T D^2$.
#
# Next: chapter 2 gives the tokens a position and adds the class token.
