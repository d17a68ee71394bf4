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
# 2. count the tokens a ViT sees for any resolution and patch size (`num_tokens`);
# 3. build the patch embedding as a strided convolution (`PatchEmbed`) and prove it is a linear layer on
#    the flattened patches (`conv_weight_to_linear`);
# 4. count the multiply-accumulates of a whole ViT forward pass (`vit_macs`) and check the count against
#    PyTorch's own FLOP counter.

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
from torch import nn
from vitcourse import checks, data, env, flops, viz

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
# Visible checks: shape, the first two patches, the error.
images = torch.rand(2, 3, 224, 224)
patches = patchify(images, 16)
checks.check_shape(patches, (2, 196, 768), name="patchify(images, 16)")
first = images[0, :, :16, :16].permute(1, 2, 0).reshape(-1)     # top-left patch, (row, col, channel)
checks.check_close(patches[0, 0], first, name="patch 0 (top-left)",
                   hint="inside a patch the order is (row, column, channel): channel varies fastest")
second = images[0, :, :16, 16:32].permute(1, 2, 0).reshape(-1)  # its right-hand neighbour
checks.check_close(patches[0, 1], second, name="patch 1",
                   hint="patch 1 must be the right-hand neighbour of patch 0 (row-major grid order)")
error = checks.check_raises(lambda: patchify(torch.zeros(1, 3, 30, 32), 16), ValueError,
                            name="patchify on a 30x32 image with patch size 16")
checks.check_true("30" in str(error) and "16" in str(error),
                  f"the error message should name the image size and the patch size, got {str(error)!r}")
print("patchify: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import patches as ref
g = torch.Generator().manual_seed(env.grading_seed())
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for C in (1, 2, 3, 4, 5):                     # every channel count; wide and tall grids; P from 1 to 8
    P, h = draw(1, 9), draw(1, 5)
    h, w = (h, h + draw(1, 4)) if C % 2 else (h + draw(1, 4), h)
    x = torch.randn(draw(1, 4), C, h * P, w * P, generator=g)
    checks.check_close(patchify(x, P), ref.patchify(x, P), name=f"patchify on {tuple(x.shape)}, P={P}")
x = torch.randn(2, 3, 12, 20, generator=g, dtype=torch.float64)
checks.check_true(patchify(x, 4).dtype == torch.float64,
                  f"patchify turned float64 images into {patchify(x, 4).dtype}",
                  hint="reshape and permute keep the dtype: no conversion is needed")
P = draw(3, 10)
for H, W, bad in ((3 * P, 2 * P + 1, 2 * P + 1), (2 * P + 1, 3 * P, 2 * P + 1)):  # the width, then the height
    error = checks.check_raises(lambda H=H, W=W: patchify(torch.zeros(1, 2, H, W), P), ValueError,
                                name=f"patchify on a {H}x{W} image with patch size {P}",
                                hint="check both the height and the width")
    checks.check_true(str(bad) in str(error) and str(P) in str(error),
                      f"the error for a {H}x{W} image and patch size {P} should name both, got {str(error)!r}")
out = checks.check_on_meta(lambda: patchify(torch.empty(2, 3, 8, 12, device="meta"), 4), name="patchify",
                           hint="create new tensors on the input's device (device=images.device), or use reshape and "
                                "permute only")
_ = checks.check_shape(out, (2, 6, 48), name="patchify on (2, 3, 8, 12) meta images")
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
images = torch.rand(2, 3, 32, 48)
checks.check_close(unpatchify(patchify(images, 8), 8, (32, 48)), images,
                   name="unpatchify(patchify(x)) on a 32x48 image",
                   hint="unpatchify must undo every step of patchify, in reverse order")
print("unpatchify: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import patches as ref
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
checks.check_true(unpatchify(p, 4, (8, 12)).dtype == torch.float64,
                  f"unpatchify turned float64 patches into {unpatchify(p, 4, (8, 12)).dtype}")
out = checks.check_on_meta(lambda: unpatchify(torch.empty(2, 6, 48, device="meta"), 4, (8, 12)), name="unpatchify",
                           hint="create new tensors on the input's device (device=patches.device), or use reshape and "
                                "permute only")
_ = checks.check_shape(out, (2, 3, 8, 12), name="unpatchify of (2, 6, 48) meta patches to 8x12")
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
# The patch grid is what a convolution with kernel and stride $P$ produces: $\lfloor H/P \rfloor \times
# \lfloor W/P \rfloor$ patches (pixels past the last full patch are dropped). Then come the **prefix
# tokens**: a ViT classifier prepends one learned `[CLS]` token, and some models add *register* tokens
# (chapter 8).
#
# $$
# N_\text{tokens} = \left\lfloor \frac{H}{P} \right\rfloor \left\lfloor \frac{W}{P} \right\rfloor
# + [\text{CLS}] + R .
# $$
#
# ### Exercise 3 — `num_tokens` (3 points)
#
# Return that count as an `int` for any height, width, patch size, class token or not, and any number of
# registers $R$.

# %% nbgrader={"grade": false, "grade_id": "num_tokens", "locked": false, "schema_version": 3, "solution": true, "task": false}
def num_tokens(height: int, width: int, patch_size: int, class_token: bool = True,
               num_registers: int = 0) -> int:
    """Tokens a ViT sees: floor(H/P) * floor(W/P) patches + CLS (if any) + registers."""
    ### BEGIN SOLUTION
    return (height // patch_size) * (width // patch_size) + int(class_token) + num_registers
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_num_tokens", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(num_tokens(224, 224, 16), 197, name="num_tokens(224, 224, 16)")
checks.check_equal(num_tokens(336, 336, 14), 577, name="num_tokens(336, 336, 14)")
checks.check_equal(num_tokens(224, 224, 16, class_token=False), 196, name="without CLS")
print("num_tokens: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import patches as ref
for (h, w, p), expected in [((224, 224, 14), 257), ((448, 448, 14), 1025),
                            ((1024, 1024, 14), 5330), ((1024, 1024, 16), 4097)]:
    checks.check_equal(num_tokens(h, w, p), expected, name=f"num_tokens({h}, {w}, {p})")
import numbers
g = torch.Generator().manual_seed(env.grading_seed() + 2)
for k in range(20):
    h, w = (int(v) for v in torch.randint(8, 700, (2,), generator=g))
    p = int(torch.randint(2, 33, (1,), generator=g))
    h, w = h + (h % p == 0), w + (w % p == 0)   # partial patches at the border
    cls, regs = bool(k % 2), int(torch.randint(1, 9, (1,), generator=g)) * (k % 4 > 1)
    n = num_tokens(h, w, p, class_token=cls, num_registers=regs)
    checks.check_true(isinstance(n, numbers.Integral), f"num_tokens should return an int, got {type(n).__name__} {n!r}")
    checks.check_equal(n, ref.num_tokens(h, w, p, class_token=cls, num_registers=regs),
                       name=f"num_tokens({h}, {w}, {p}, class_token={cls}, num_registers={regs})")
### END HIDDEN TESTS

# %% [markdown]
# Token counts grow with the square of the resolution. The table shows the sequence length for a few
# resolutions and the patch sizes in common use (with `[CLS]`):

# %% tags=["demo"]
sizes, patch_sizes = [224, 336, 448, 518, 1024], [32, 16, 14, 8]
print("pixels | " + " | ".join(f"P={p:>2}" for p in patch_sizes))
for s in sizes:
    print(f"{s:>6} | " + " | ".join(f"{num_tokens(s, s, p):>4}" for p in patch_sizes))

# %% [markdown]
# A common claim is that going from 224 to 1024 pixels at patch 16 means "16x the FLOPs and 256x the
# memory". Let us check it. The sequence grows from 197 to 4097 tokens, about **21x**; the attention matrix
# (tokens squared) grows about **430x**. How much the *compute* grows we will measure in section 4.

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
# ### Exercise 4 — `PatchEmbed` (4 points)
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
torch.manual_seed(0)
embed = PatchEmbed(patch_size=16, in_chans=3, embed_dim=192)
tokens = embed(torch.rand(2, 3, 224, 224))
checks.check_shape(tokens, (2, 196, 192), name="PatchEmbed(16, 3, 192) on (2, 3, 224, 224)")
checks.check_true(isinstance(embed.proj, nn.Conv2d), "self.proj should be an nn.Conv2d")
checks.check_raises(lambda: embed(torch.rand(1, 3, 100, 96)), ValueError,
                    name="PatchEmbed on a 100x96 image with patch size 16")
print("PatchEmbed: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import patches as ref
g = torch.Generator().manual_seed(env.grading_seed() + 3)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for C in (1, 2, 4):
    P, D, h = draw(2, 9), draw(4, 33), draw(1, 5)
    h, w = (h, h + draw(1, 3)) if C % 2 else (h + draw(1, 3), h)
    mine, theirs = PatchEmbed(P, C, D), ref.PatchEmbed((h * P, w * P), P, C, D)
    conv = mine.proj
    checks.check_true(isinstance(conv, nn.Conv2d) and conv.in_channels == C and conv.out_channels == D
                      and tuple(conv.kernel_size) == (P, P) and tuple(conv.stride) == (P, P) and conv.bias is not None,
                      f"PatchEmbed({P}, {C}, {D}).proj should be Conv2d({C}, {D}, kernel_size={P}, stride={P}) "
                      f"with a bias, got {conv}")
    theirs.proj.load_state_dict(conv.state_dict())
    x = torch.randn(draw(1, 4), C, h * P, w * P, generator=g)
    checks.check_close(mine(x), theirs(x), name=f"PatchEmbed(P={P}, C={C}, D={D}) on {tuple(x.shape)}",
                       hint="tokens must come out as (B, N, D) in row-major grid order")
    checks.check_raises(lambda mine=mine, C=C, h=h, w=w, P=P: mine(torch.zeros(1, C, h * P, w * P + 1)), ValueError,
                        name=f"PatchEmbed(P={P}) on a {h * P}x{w * P + 1} image", hint="check the width too")
x = torch.randn(2, 2, 8, 12, generator=g, dtype=torch.float64)
checks.check_true(PatchEmbed(4, 2, 8).double()(x).dtype == torch.float64,
                  "a float64 PatchEmbed on float64 images should return float64")
out = checks.check_on_meta(lambda: PatchEmbed(4, 2, 8).to("meta")(torch.empty(2, 2, 8, 12, device="meta")),
                           name="PatchEmbed", hint="create new tensors on the input's device (device=x.device)")
_ = checks.check_shape(out, (2, 6, 8), name="PatchEmbed(4, 2, 8) on (2, 2, 8, 12) meta images")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 5 — the convolution is a linear layer (3 points)
#
# The convolution's weight has shape `(D, C, P, P)`. Write `conv_weight_to_linear(weight)` that rearranges
# it into a matrix `W` of shape `(D, P*P*C)` whose columns follow `patchify`'s (row, column, channel)
# order, so that
#
# $$\texttt{patchify}(x)\, W^\top + b \;=\; \texttt{PatchEmbed}(x).$$

# %% nbgrader={"grade": false, "grade_id": "conv_as_linear", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv_weight_to_linear(weight: torch.Tensor) -> torch.Tensor:
    """Conv weight (D, C, P, P) -> linear weight (D, P*P*C) in (row, col, channel) column order."""
    ### BEGIN SOLUTION
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_conv_as_linear", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(1)
embed = PatchEmbed(patch_size=8, in_chans=3, embed_dim=32)
x = torch.rand(2, 3, 32, 40)
W = conv_weight_to_linear(embed.proj.weight)
checks.check_shape(W, (32, 8 * 8 * 3), name="conv_weight_to_linear(weight)")
checks.check_close(patchify(x, 8) @ W.T + embed.proj.bias, embed(x), atol=1e-5,
                   name="patchify(x) @ W.T + b versus PatchEmbed(x)",
                   hint="the columns of W must follow the (row, column, channel) order of a patch")
print("conv_weight_to_linear: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import patches as ref
g = torch.Generator().manual_seed(env.grading_seed() + 4)
for C in (1, 2, 3, 5):
    D, P = (int(v) for v in torch.randint(2, 9, (2,), generator=g))
    w = torch.randn(D, C, P, P, generator=g, dtype=torch.float64 if C == 5 else torch.float32)
    checks.check_close(conv_weight_to_linear(w), ref.conv_weight_to_linear(w), name=f"weight {tuple(w.shape)}")
    checks.check_true(conv_weight_to_linear(w).dtype == w.dtype, f"a {w.dtype} weight should give a {w.dtype} matrix")
    x = torch.randn(2, C, 2 * P, 3 * P, generator=g, dtype=w.dtype)
    by_conv = torch.nn.functional.conv2d(x, w, stride=P).flatten(2).transpose(1, 2)
    checks.check_close(ref.patchify(x, P) @ conv_weight_to_linear(w).T, by_conv, atol=1e-4,
                       name=f"patchify(x) @ W.T versus the convolution, weight {tuple(w.shape)}")
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
# ### Exercise 6 — `vit_macs` (4 points)
#
# Write `vit_macs(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000, in_chans=3,
# class_token=True)` returning the total MACs of one forward pass for one square image, as an `int`.
# The MLP's hidden width is `int(embed_dim * mlp_ratio)`. The head reads one token; `num_classes=0` means
# no head. Without a class token the sequence holds the patches only.

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
from vitcourse.models.vit import ViT
small = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=10)
measured = flops.measured_macs(ViT(**small), (1, 3, 32, 32))
small.pop("num_heads")
checks.check_equal(vit_macs(**small), measured, name="vit_macs for a 2-block ViT on 32 px",
                   hint="compare your count part by part with the table above")
checks.check_equal(round(vit_macs(224, 16, 768, 12) / 1e9, 2), 17.56, name="ViT-B/16 GMACs")
print("vit_macs: visible checks passed")
### BEGIN HIDDEN TESTS
import numbers
g = torch.Generator().manual_seed(env.grading_seed() + 5)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for k, (mlp_ratio, in_chans) in enumerate([(2.0, 1), (4.0, 3), (3.0, 4), (2.5, 2)]):
    P = [4, 8, 14, 16][draw(0, 4)]
    cfg = dict(img_size=P * draw(2, 8), patch_size=P, embed_dim=8 * draw(2, 9), depth=draw(2, 4),
               mlp_ratio=mlp_ratio, num_classes=draw(1, 20) * (k != 2), in_chans=in_chans, class_token=k % 2 == 1)
    measured = flops.measured_macs(
        ViT(img_size=cfg["img_size"], patch_size=P, in_chans=in_chans, embed_dim=cfg["embed_dim"],
            depth=cfg["depth"], num_heads=2, mlp_ratio=mlp_ratio, num_classes=cfg["num_classes"],
            class_token=cfg["class_token"], global_pool="token" if cfg["class_token"] else "avg"),
        (1, in_chans, cfg["img_size"], cfg["img_size"]))
    macs = vit_macs(**cfg)
    checks.check_true(isinstance(macs, numbers.Integral), f"vit_macs should return an int, got {type(macs).__name__} {macs!r}",
                      hint="int(embed_dim * mlp_ratio) is the MLP width; keep every term an int")
    checks.check_equal(macs, measured, name=f"vit_macs({cfg})")
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
# ## 5. Explore
#
# Move the sliders: resolution and patch size change the grid, the sequence length and the cost of a
# ViT-B forward pass. (On the static site you see a few fixed settings instead.)

# %% tags=["demo"]
from vitcourse import widgets
widgets.patch_explorer(cat)

# %% [markdown]
# ## Takeaways
#
# - A ViT reads an image as $\lfloor H/P \rfloor \lfloor W/P \rfloor$ patch tokens plus prefix tokens;
#   the order of patches (row-major) and of values inside a patch is a convention that must be kept
#   everywhere.
# - The patch embedding is one linear map shared by all patches; a stride-$P$ convolution computes it.
# - Compute is mostly matrix multiplication: projections and MLP grow linearly with the tokens, attention
#   quadratically. Tables that say "FLOPs" often mean MACs; one MAC is two FLOPs.
#
# Next: chapter 2 gives the tokens a position and adds the class token.
