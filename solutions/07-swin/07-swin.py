# %% [markdown]
# # Chapter 7 — Swin: windows, shifts and a feature pyramid
#
# A ViT attends globally: every token to every token, a cost that grows with the square of the number
# of tokens. Swin (Liu et al., 2021) attends inside small $M \times M$ windows instead, shifts the windows
# in every second block so information crosses their borders, and merges patches between stages to build
# a pyramid of feature maps, like a CNN's. The course's `vitcourse.models.swin.SwinTransformer` equals
# timm's and torchvision's Swin-T to the last bit; here you build its distinctive parts.
#
# **You will** write `window_partition` / `window_reverse`, the relative position index, the mask of the
# shifted windows, patch merging and the forward pass of a shifted block, and watch information cross
# window borders.

# %% [markdown]
# This notebook is the exercise of [Chapter 7 — Swin: windows and hierarchy](https://vit-from-scratch.github.io/vit-course/book/07-swin.html)
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

import torch
from torch import nn
import matplotlib.pyplot as plt
from vitcourse import checks, env
from vitcourse.models import swin as ref

DEVICE, BUDGET = env.device(), env.budget()
print(env.describe())


# %% [markdown]
# ## 1. Windows
#
# Swin keeps feature maps channels-last, `(B, H, W, C)`. `window_partition(x, M)` cuts every map into
# non-overlapping $M \times M$ windows, in row-major window order per image, and stacks them:
# `(B * nW, M, M, C)` with $nW = (H/M)(W/M)$. Attention then runs on each window as an independent
# sequence of $M^2$ tokens. `window_reverse(windows, M, H, W)` puts them back.
#
# ### Exercise 1 — `window_partition` and `window_reverse` (4 points)
#
# The hidden checks use maps that are not square, several window sizes (1 to 7), batch sizes and channel
# counts, and float64 maps: nothing may assume $H = W$ or a particular $M$, and the dtype stays the input's.

# %% nbgrader={"grade": false, "grade_id": "windows", "locked": false, "schema_version": 3, "solution": true, "task": false}
def window_partition(x, window_size):
    """(B, H, W, C) -> (B * nW, M, M, C)."""
    ### BEGIN SOLUTION
    B, H, W, C = x.shape
    M = window_size
    x = x.reshape(B, H // M, M, W // M, M, C).permute(0, 1, 3, 2, 4, 5)  # (B, H/M, W/M, M, M, C)
    return x.reshape(-1, M, M, C)
    ### END SOLUTION


def window_reverse(windows, window_size, H, W):
    """(B * nW, M, M, C) -> (B, H, W, C)."""
    ### BEGIN SOLUTION
    M, C = window_size, windows.shape[-1]
    x = windows.reshape(-1, H // M, W // M, M, M, C).permute(0, 1, 3, 2, 4, 5)  # (B, H/M, M, W/M, M, C)
    return x.reshape(-1, H, W, C)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_windows", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
x = torch.randn(2, 8, 12, 3)
w = window_partition(x, 4)
checks.check_shape(w, (12, 4, 4, 3), name="window_partition of (2, 8, 12, 3) with M=4")
checks.check_close(w[1], x[0, :4, 4:8], name="window 1 of image 0", hint="windows in row-major order: window 1 is right of window 0")
checks.check_close(w[3], x[0, 4:8, :4], name="window 3 of image 0",
                   hint="an 8 x 12 map holds 2 rows of 3 windows: window 3 starts the second row")
checks.check_close(window_reverse(w, 4, 8, 12), x, name="window_reverse(window_partition(x))")
print("windows: visible checks passed")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed())
for B, rows, cols, M, C in [(1, 2, 3, 4, 3), (3, 3, 1, 2, 5), (2, 1, 2, 7, 4), (2, 2, 2, 1, 2), (1, 3, 2, 3, 1)]:
    H, W = rows * M, cols * M
    x = torch.randn(B, H, W, C, generator=g)
    want = ref.window_partition(x, M)
    checks.check_close(window_partition(x, M), want, name=f"window_partition of {tuple(x.shape)}, M={M}")
    checks.check_close(window_reverse(want, M, H, W), x, name=f"window_reverse back to {tuple(x.shape)}, M={M}",
                       hint="H is the height (rows), W the width (columns)")
x = torch.randn(2, 6, 8, 3, generator=g, dtype=torch.float64)
checks.check_equal(window_partition(x, 2).dtype, torch.float64, name="dtype of window_partition of a float64 map",
                   hint="keep the input's dtype: reshape and permute do")
_ = checks.check_close(window_partition(x, 2), ref.window_partition(x, 2), atol=1e-12, name="window_partition in float64")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Relative position bias
#
# Inside a window, Swin adds a learned bias to each attention score that depends only on the offset
# between the two tokens: $(dy, dx)$ with $dy, dx \in [-(M-1), M-1]$, so $(2M-1)^2$ possible offsets, one
# learned value per offset and head. The index of the pair (query $i$, key $j$), tokens numbered row-major
# in the window, is
#
# $$\text{index}(i, j) = (dy + M - 1)(2M - 1) + (dx + M - 1), \quad dy = y_i - y_j,\ dx = x_i - x_j.$$
#
# ### Exercise 2 — `relative_position_index` (4 points)
#
# Return a `(M*M, M*M)` tensor of integers (it indexes the bias table, `table[index]`), for any $M \ge 1$.

# %% nbgrader={"grade": false, "grade_id": "rel_index", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relative_position_index(window_size):
    ### BEGIN SOLUTION
    M = window_size
    ys, xs = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)  # (M*M,) coordinates of the tokens, row-major
    dy = ys[:, None] - ys[None, :] + M - 1  # (M*M, M*M), in [0, 2M-2]
    dx = xs[:, None] - xs[None, :] + M - 1
    return dy * (2 * M - 1) + dx
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rel_index", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
idx = relative_position_index(2)
checks.check_shape(idx, (4, 4), name="relative_position_index(2)")
checks.check_true(not idx.dtype.is_floating_point and idx.dtype != torch.bool,
                  f"relative_position_index must hold integers (it indexes the bias table), got {idx.dtype}",
                  hint="build it from torch.arange, which gives int64")
checks.check_equal(int(idx[0, 0]), 4, name="index of a token with itself for M=2 (the centre of the 3x3 table)")
checks.check_equal(int(idx[0, 1]), 3, name="index(query (0,0), key (0,1)): dy=0, dx=-1",
                   hint="(dy + M - 1) * (2M - 1) + (dx + M - 1), with dy = y_query - y_key")
print("relative_position_index: visible checks passed")
### BEGIN HIDDEN TESTS
for M in (1, 3, 4, 7):
    idx = relative_position_index(M)
    checks.check_true(not idx.dtype.is_floating_point and idx.dtype != torch.bool,
                      f"relative_position_index({M}) must hold integers, got {idx.dtype}")
    checks.check_equal(idx.long(), ref.relative_position_index(M), name=f"relative_position_index({M})")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Shifted windows and their mask
#
# Every second block shifts the window grid by $s$, usually $\lfloor M/2 \rfloor$. Rather than padding, Swin
# rolls the map by $-s$ in both directions (`torch.roll`), partitions as usual, and rolls back by $+s$ after
# attention. The windows at the bottom and right edges then contain tokens that were far apart in the
# image (they wrapped around). A mask stops them from attending to each other: label the rolled map's
# pixels by 9 regions — rows `[0, H-M)`, `[H-M, H-s)`, `[H-s, H)` times the same for columns (with $W$) —
# and give `-100` to every pair of tokens in one window with different labels, `0` otherwise.
#
# ### Exercise 3 — `shifted_window_mask` (4 points)
#
# Return `(nW, M*M, M*M)` float32 values for an `height x width` map (one image) and any shift
# $0 < s < M$. Use your `window_partition` on a `(1, H, W, 1)` map of region labels. The hidden checks
# use maps that are not square and shifts other than $M/2$.

# %% nbgrader={"grade": false, "grade_id": "mask", "locked": false, "schema_version": 3, "solution": true, "task": false}
def shifted_window_mask(height, width, window_size, shift):
    ### BEGIN SOLUTION
    M = window_size
    region = torch.zeros(1, height, width, 1)
    label = 0
    for rows in (slice(0, -M), slice(-M, -shift), slice(-shift, None)):
        for cols in (slice(0, -M), slice(-M, -shift), slice(-shift, None)):
            region[:, rows, cols, :] = label
            label += 1
    labels = window_partition(region, M).reshape(-1, M * M)  # (nW, M*M)
    return (labels[:, None, :] != labels[:, :, None]).float() * -100.0
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_mask", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
mask = shifted_window_mask(8, 8, 4, 2)
checks.check_shape(mask, (4, 16, 16), name="shifted_window_mask(8, 8, 4, 2)")
checks.check_equal(mask.dtype, torch.float32, name="dtype of the mask", hint="0 and -100 as float32, e.g. (labels differ).float() * -100")
checks.check_true(bool((mask[0] == 0).all()), "the top-left window holds one region only: its mask must be all zeros")
checks.check_true(bool((mask[3] != 0).any()), "the bottom-right window mixes 4 regions: some pairs must be masked")
checks.check_equal(int((mask[3] == 0).sum()), 4 * 16, name="unmasked pairs in the bottom-right window (4 regions of 4 tokens)")
print("shifted_window_mask: visible checks passed")
### BEGIN HIDDEN TESTS
for H, W, M, s in [(14, 14, 7, 3), (8, 12, 4, 2), (12, 6, 3, 1), (8, 8, 4, 1), (12, 8, 4, 3), (6, 9, 3, 2)]:
    got = shifted_window_mask(H, W, M, s)
    checks.check_equal(got.dtype, torch.float32, name=f"dtype of shifted_window_mask({H}, {W}, {M}, {s})")
    checks.check_close(got, ref.shifted_window_mask(H, W, M, s), atol=1e-6, name=f"shifted_window_mask({H}, {W}, {M}, {s})",
                       hint="regions from the shift s given (not M // 2), rows from the height, columns from the width")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. A shifted block
#
# The forward pass of a block with shift $s$: `norm1`, roll by $(-s, -s)$, partition into windows, window
# attention with the mask, reverse, roll by $(+s, +s)$, residual; then `norm2`, MLP, residual. With $s = 0$
# there is no roll and no mask.
#
# ### Exercise 4 — `SwinBlock.forward` (4 points)
#
# `__init__` is written for you: `norm1`, `attn`, `norm2`, `mlp`, `window_size`, `shift_size`. `attn` is the
# course's `WindowAttention` (multi-head attention inside each window, with the relative position bias of
# section 2): `self.attn(windows, mask)` takes windows as token sequences `(B*nW, M*M, C)` and a mask
# `(nW, M*M, M*M)` or `None`. Write `forward` with your functions from above.
#
# The checks copy your block's weights into the course's `SwinBlock` and compare the outputs, on maps that
# are not square, with several window sizes, shifts (not only $M/2$), batch sizes, and in float64. They also
# run your block on PyTorch's `meta` device, which has shapes but no data: a tensor created inside `forward`
# lives on the CPU unless you say otherwise, and fails there as it would on a GPU. Put the mask on the
# device of `x` (`.to(x.device)`, or `.to(x)` for its device and dtype).

# %%
from vitcourse.models.swin import WindowAttention   # attention inside each window, with the relative position bias
from vitcourse.models.vit import Mlp                 # Linear -> GELU -> Linear, as in chapter 3

# %% nbgrader={"grade": false, "grade_id": "block", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SwinBlock(nn.Module):
    """Pre-norm block with (shifted) window attention. (B, H, W, C) -> (B, H, W, C)."""

    def __init__(self, dim, num_heads, window_size=7, shift_size=0, mlp_ratio=4.0):
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        ### BEGIN SOLUTION
        B, H, W, C = x.shape
        M, s = self.window_size, self.shift_size
        y = self.norm1(x)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        mask = shifted_window_mask(H, W, M, s).to(x) if s else None  # on x's device, in x's dtype
        windows = window_partition(y, M).reshape(-1, M * M, C)  # (B*nW, M*M, C)
        windows = self.attn(windows, mask).reshape(-1, M, M, C)
        y = window_reverse(windows, M, H, W)  # (B, H, W, C)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_block", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def reference_with_weights_of(mine, *args, **kwargs):
    """The course's SwinBlock(*args, **kwargs), holding the weights of your block."""
    theirs = ref.SwinBlock(*args, **kwargs)
    missing = theirs.load_state_dict(mine.state_dict(), strict=False).missing_keys
    checks.check_true(not missing, f"your SwinBlock has no {missing}",
                      hint="keep the layers that __init__ creates, under their names")
    return theirs


torch.manual_seed(0)
x = torch.randn(2, 8, 8, 16)
for shift in (0, 2):
    mine = SwinBlock(16, 2, window_size=4, shift_size=shift)
    theirs = reference_with_weights_of(mine, 16, 2, window_size=4, shift_size=shift)
    with torch.no_grad():
        checks.check_close(mine(x), theirs(x), atol=1e-5, name=f"SwinBlock with shift {shift}",
                           hint="roll by -shift before attention and by +shift after")
print("SwinBlock: visible checks passed")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 3)
for B, H, W, M, s, dim, heads, double in [(2, 12, 12, 4, 2, 12, 3, False), (1, 14, 7, 7, 3, 8, 2, False),
                                          (3, 6, 9, 3, 1, 6, 2, False), (2, 8, 12, 4, 1, 8, 4, False),
                                          (1, 7, 7, 7, 0, 8, 1, False), (2, 12, 8, 4, 2, 8, 2, True)]:
    mine = SwinBlock(dim, heads, window_size=M, shift_size=s, mlp_ratio=2.0)
    with torch.no_grad():
        for p in mine.parameters():   # norms that are not the identity, a bias table that is not ~0
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
    theirs = reference_with_weights_of(mine, dim, heads, window_size=M, shift_size=s, mlp_ratio=2.0)
    x = torch.randn(B, H, W, dim, generator=g)
    if double:
        mine, theirs, x = mine.double(), theirs.double(), x.double()
    name = f"SwinBlock on {tuple(x.shape)} ({x.dtype}), M={M}, shift={s}"
    with torch.no_grad():
        out = mine(x)
        checks.check_equal(out.dtype, x.dtype, name=f"dtype of the output of {name}")
        checks.check_close(out, theirs(x), atol=1e-4, name=name,
                           hint="use self.shift_size and self.window_size; norm1 before attention, norm2 before the MLP; "
                                "each residual adds the block's input to its branch")
meta_block = SwinBlock(8, 2, window_size=4, shift_size=2).to("meta")
out = checks.check_on_meta(lambda: meta_block(torch.empty(2, 8, 12, 8, device="meta")), name="your SwinBlock",
                           hint="a tensor created inside forward is on the CPU: build the mask on x's device, "
                                "shifted_window_mask(...).to(x.device)")
_ = checks.check_shape(out, (2, 8, 12, 8), name="SwinBlock on the meta device")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Patch merging
#
# Between stages, every 2 × 2 group of neighbours becomes one token: concatenate their features in the
# official order `x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]` (rows are the first spatial
# axis), apply `LayerNorm(4C)` and a `Linear(4C, 2C, bias=False)`. The grid halves, the channels double.
#
# ### Exercise 5 — `PatchMerging` (4 points)
#
# The hidden checks use maps that are not square, several batch sizes and channel counts, and PyTorch's
# `meta` device.

# %% nbgrader={"grade": false, "grade_id": "merging", "locked": false, "schema_version": 3, "solution": true, "task": false}
class PatchMerging(nn.Module):
    """(B, H, W, C) -> (B, H/2, W/2, 2C)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        ### BEGIN SOLUTION
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)  # (B, H/2, W/2, 4C)
        return self.reduction(self.norm(x))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_merging", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
mine, theirs = PatchMerging(8), ref.PatchMerging(8)
with torch.no_grad():
    mine.norm.weight.normal_()
theirs.load_state_dict(mine.state_dict())
x = torch.randn(2, 6, 4, 8)
checks.check_shape(mine(x), (2, 3, 2, 16), name="PatchMerging(8) on (2, 6, 4, 8)")
checks.check_close(mine(x), theirs(x), atol=1e-5, name="PatchMerging vs the reference",
                   hint="concatenate the four neighbours in the official order, not with a plain reshape")
print("PatchMerging: visible checks passed")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 4)
for B, H, W, dim in [(3, 8, 10, 6), (1, 2, 4, 3), (2, 6, 6, 5)]:
    mine, theirs = PatchMerging(dim), ref.PatchMerging(dim)
    with torch.no_grad():
        for p in mine.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    theirs.load_state_dict(mine.state_dict())
    x = torch.randn(B, H, W, dim, generator=g)
    with torch.no_grad():
        out = mine(x)
    checks.check_equal(out.dtype, torch.float32, name="dtype of PatchMerging's output")
    checks.check_close(out, theirs(x), atol=1e-4, name=f"PatchMerging on {tuple(x.shape)}",
                       hint="neighbours in the order x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]; "
                            "then the norm, then the reduction")
out = checks.check_on_meta(lambda: PatchMerging(4).to("meta")(torch.empty(2, 4, 6, 4, device="meta")), name="your PatchMerging",
                           hint="create any tensor inside forward on x's device (torch.zeros(..., device=x.device))")
_ = checks.check_shape(out, (2, 2, 3, 8), name="PatchMerging on the meta device")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. How far does information travel?
#
# Take the gradient of one output token of a stack of your blocks with respect to the input: the nonzero
# region is that token's receptive field. With no shift it never leaves the window; with alternating
# shifts it grows by about one window per pair of blocks — linearly, not logarithmically. Patch merging is
# what makes reach across the whole image cheap.

# %% tags=["demo"]
from vitcourse.analysis import receptive_field  # the gradient of one output token, as described above

torch.manual_seed(0)
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
settings = [("2 blocks, no shift", [0, 0]), ("2 blocks, shift", [0, 2]), ("4 blocks, shift", [0, 2, 0, 2]),
            ("6 blocks, shift", [0, 2, 0, 2, 0, 2])]
for ax, (title, shifts) in zip(axes, settings):
    blocks = [SwinBlock(8, 2, window_size=4, shift_size=s).eval() for s in shifts]
    ax.imshow(receptive_field(blocks, 16, 8, point=(6, 6)).float().numpy(), cmap="Blues")
    ax.plot(6, 6, "r*")
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(0, 16, 4))
    ax.set_yticks(range(0, 16, 4))
    ax.grid(color="grey", lw=0.5)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Takeaways
#
# - Window attention costs $O(HW \cdot M^2)$: linear in the number of pixels at a fixed window size.
# - Shifting the windows by $M/2$ every other block, with a roll and a 9-region mask, lets information
#   cross window borders; within a stage the reach grows by about a window per shifted pair.
# - Patch merging halves the grid and doubles the channels, giving CNN-like pyramids (H/4 ... H/32) that
#   detection and segmentation heads consume.
