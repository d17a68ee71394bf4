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
# shifted windows, the forward pass of a shifted block and patch merging; predict what the mask protects;
# relate patch merging to a convolution; and watch information cross window borders.

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

import torch
import torch.nn.functional as F
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
# ### Exercise 1 — `window_partition` and `window_reverse` (3 points)
#
# Maps are rarely square (a detection input of 800 × 1333 pixels gives a 200 × 333 grid at Swin's
# first stage, padded to whole windows), so nothing may assume $H = W$ or a particular $M$; the output
# keeps the input's dtype and device.

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


# %% nbgrader={"grade": true, "grade_id": "test_windows", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def check_windows():
    x = torch.arange(2 * 8 * 12, dtype=torch.float32).reshape(2, 8, 12, 1)  # two 8 x 12 maps; token value = its number
    w = window_partition(x, 4)
    checks.check_shape(w, (12, 4, 4, 1), name="window_partition of (2, 8, 12, 1) with M=4",
                       hint="(B * nW, M, M, C): 2 images x (8/4) x (12/4) windows")
    grid = x.reshape(2, 2, 4, 3, 4, 1)  # (B, window row, row in window, window column, column in window, C)
    checks.check_close(w, ref.window_partition(x, 4), name="the 12 windows of two 8 x 12 maps (values: token numbers)",
                       mistakes={"windows in column-major order (down each column of windows first)":
                                 grid.permute(0, 3, 1, 2, 4, 5).reshape(-1, 4, 4, 1)},
                       hint="windows in row-major order per image: an 8 x 12 map holds 2 rows of 3 windows, and "
                            "window 1 is right of window 0")
    checks.check_close(window_reverse(ref.window_partition(x, 4), 4, 8, 12), x,
                       name="window_reverse(windows, 4, H=8, W=12) of those windows",
                       hint="H is the height (rows), W the width (columns): W/M windows per row of windows")
    checks.check_dtype(window_partition(x.double(), 4), torch.float64, name="window_partition of a float64 map",
                       hint="keep the input's dtype: reshape and permute do")
    checks.check_on_meta(lambda: window_partition(torch.empty(2, 6, 9, 5, device="meta"), 3), shape=(12, 3, 3, 5),
                         name="window_partition of a (2, 6, 9, 5) map", hint="reshape and permute the input itself")
    checks.check_on_meta(lambda: window_reverse(torch.empty(12, 3, 3, 5, device="meta"), 3, 6, 9), shape=(2, 6, 9, 5),
                         name="window_reverse to (2, 6, 9, 5)", hint="reshape and permute the input itself")


checks.run(check_windows, "Exercise 1 (window_partition, window_reverse)",
           hint="H and W differ: take them from x.shape (window_partition) or from the arguments (window_reverse)")
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
# ### Exercise 2 — `relative_position_index` (3 points)
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


# %% nbgrader={"grade": true, "grade_id": "test_rel_index", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def check_rel_index():
    idx = relative_position_index(3)
    checks.check_shape(idx, (9, 9), name="relative_position_index(3)", hint="one index per (query, key) pair: (M*M, M*M)")
    checks.check_true(not idx.dtype.is_floating_point and idx.dtype != torch.bool,
                      f"relative_position_index(3) must hold integers (it indexes the bias table), got {idx.dtype}",
                      hint="build it from torch.arange, which gives int64; no float coordinates")
    y, x = torch.arange(9) // 3, torch.arange(9) % 3  # row and column of each token of a 3 x 3 window
    dy, dx = y[:, None] - y[None, :], x[:, None] - x[None, :]  # query minus key
    checks.check_close(idx.double(), ref.relative_position_index(3).double(), name="relative_position_index(3)",
                       mistakes={"the offsets taken as key minus query": ((2 - dy) * 5 + 2 - dx).double(),
                                 "dx and dy swapped in the formula": ((dx + 2) * 5 + dy + 2).double(),
                                 "rows of the table M long instead of 2M - 1": ((dy + 2) * 3 + dx + 2).double(),
                                 "absolute offsets without the M - 1 shift": (dy.abs() * 5 + dx.abs()).double()},
                       hint="(dy + M - 1) * (2M - 1) + (dx + M - 1), with dy = y_query - y_key, dx = x_query - x_key, "
                            "tokens numbered row by row")
    checks.check_equal(relative_position_index(1).tolist(), [[0]], name="relative_position_index(1), a window of one token",
                       hint="M = 1: one token, offset (0, 0), index 0")


checks.run(check_rel_index, "Exercise 2 (relative_position_index)")
### BEGIN HIDDEN TESTS
for M in (2, 4, 7):
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
# ### Exercise 3 — `shifted_window_mask` (3 points)
#
# Return `(nW, M*M, M*M)` float32 values for an `height x width` map (one image) and any shift
# $0 < s < M$. Use your `window_partition` on a `(1, H, W, 1)` map of region labels. Maps need not be
# square, and the shift need not be $M/2$.

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


# %% nbgrader={"grade": true, "grade_id": "test_mask", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def check_mask():
    mask = shifted_window_mask(8, 12, 4, 1)  # 2 rows of 3 windows, shift 1 (not M/2)
    checks.check_shape(mask, (6, 16, 16), name="shifted_window_mask(8, 12, 4, 1)",
                       hint="(nW, M*M, M*M) with nW = (height/M) * (width/M)")
    checks.check_dtype(mask, torch.float32, name="shifted_window_mask(8, 12, 4, 1)",
                       hint="0 and -100 as float32: (labels differ).float() * -100")
    checks.check_true(bool((mask[0] == 0).all()), "the top-left window holds one region only: its mask must be all zeros",
                      hint="regions start at rows H - M and H - s and at columns W - M and W - s of the rolled map")
    checks.check_close(mask, ref.shifted_window_mask(8, 12, 4, 1), name="shifted_window_mask(8, 12, 4, 1)",
                       mistakes={"a shift of M // 2 instead of the shift given": ref.shifted_window_mask(8, 12, 4, 2),
                                 "4 regions instead of 9 (the bands [H-M, H-s) and [H-s, H) not told apart)":
                                 ref.shifted_window_mask(8, 12, 4, 4)},
                       hint="rows [0, H-M), [H-M, H-s), [H-s, H) with H = height, columns the same with W = width, "
                            "s = shift; -100 where two tokens of one window have different labels")


checks.run(check_mask, "Exercise 3 (shifted_window_mask)", after=[check_windows],
           hint="label a (1, height, width, 1) map: rows come from the height, columns from the width")
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
# The checks copy your block's weights into the course's `SwinBlock` and watch what your block hands
# its `attn`: the windows (are they those of the map rolled by $-s$?), the mask, and what comes out in
# the end. Maps need not be square, the shift need not be $M/2$, and the input may be float64 or live on
# another device: a tensor created inside `forward`, such as the mask, lands on the CPU unless you say
# otherwise, so put it on the device of `x` (`.to(x.device)`, or `.to(x)` for its device and dtype).

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
class Recorder(nn.Module):
    """Wraps a block's attn and keeps what it receives and returns."""

    def __init__(self, attn):
        super().__init__()
        self.attn, self.calls = attn, []

    def forward(self, windows, mask=None):
        out = self.attn(windows, mask)
        self.calls.append((windows.detach(), mask, out.detach()))
        return out


def reference_with_weights_of(mine, *args, **kwargs):
    """The course's SwinBlock(*args, **kwargs), holding the weights of your block."""
    theirs = ref.SwinBlock(*args, **kwargs)
    missing = theirs.load_state_dict(mine.state_dict(), strict=False).missing_keys
    checks.check_true(not missing, f"your SwinBlock has no {missing}", hint="keep the layers that __init__ creates, under their names")
    return theirs


def perturbed(block):
    """The block with every weight moved off its initial value (norms that are not the identity)."""
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape) * 0.3)
    return block


def check_block():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 12, 16)  # 2 rows of 3 windows of 4 x 4
    mine = perturbed(SwinBlock(16, 2, window_size=4, shift_size=0))
    after = lambda z, norm: z + mine.mlp(norm(z))  # the block's second half, from z = x + branch
    with torch.no_grad():
        y = mine.norm1(x)
        branch = ref.window_reverse(mine.attn(ref.window_partition(y, 4).reshape(-1, 16, 16)).reshape(-1, 4, 4, 16), 4, 8, 12)
        checks.check_close(mine(x), reference_with_weights_of(mine, 16, 2, window_size=4)(x), atol=1e-5,
                           name="SwinBlock without a shift", inputs={"the input x": x},
                           mistakes={"adding the attention branch to norm1(x) instead of x": after(y + branch, mine.norm2),
                                     "norm1 reused before the MLP": after(x + branch, mine.norm1)},
                           hint="x + window_reverse(attn(window_partition(norm1(x)))), then + mlp(norm2(.))")
    M, s = 4, 1
    mine = perturbed(SwinBlock(16, 2, window_size=M, shift_size=s))
    theirs = reference_with_weights_of(mine, 16, 2, window_size=M, shift_size=s)
    mine.attn = Recorder(mine.attn)
    with torch.no_grad():
        out = mine(x)
        checks.check_true(len(mine.attn.calls) == 1, "attn should be called once, on all the windows of the batch",
                          hint="window_partition the whole (B, H, W, C) map, reshape to (B*nW, M*M, C), one call")
        windows, mask, attended = mine.attn.calls[0]
        y = mine.norm1(x)
        as_windows = lambda t: ref.window_partition(t, M).reshape(-1, M * M, 16)
        checks.check_close(windows, as_windows(torch.roll(y, (-s, -s), (1, 2))),
                           name="the windows your shifted block (shift 1) hands attn",
                           mistakes={"rolling by +shift (the wrong direction)": as_windows(torch.roll(y, (s, s), (1, 2))),
                                     "rolling by M // 2 instead of shift_size": as_windows(torch.roll(y, (-2, -2), (1, 2))),
                                     "rolling along the height only": as_windows(torch.roll(y, -s, 1)),
                                     "no roll": as_windows(y), "x not normalised by norm1": as_windows(torch.roll(x, (-s, -s), (1, 2)))},
                           hint="roll norm1(x) by (-shift, -shift) along dims (1, 2), then window_partition and reshape to "
                                "(B*nW, M*M, C)")
        checks.check_true(mask is not None, "your shifted block gave attn no mask: tokens that wrapped around attend to "
                          "each other", hint="mask = shifted_window_mask(H, W, window_size, shift_size) when shift_size > 0")
        branch = torch.roll(ref.window_reverse(attended.reshape(-1, M, M, 16), M, 8, 12), (s, s), (1, 2))
        checks.check_close(out, theirs(x), atol=1e-5, name="SwinBlock with shift 1 on (2, 8, 12, 16)",
                           mistakes={"no roll back after attention":
                                     after(x + ref.window_reverse(attended.reshape(-1, M, M, 16), M, 8, 12), mine.norm2),
                                     "adding the attention branch to norm1(x) instead of x": after(y + branch, mine.norm2),
                                     "norm1 reused before the MLP": after(x + branch, mine.norm1)},
                           hint="after attn: window_reverse, roll by (+shift, +shift), add to the block's input x; then "
                                "x + mlp(norm2(x))")
    x64, mine64 = x.double(), SwinBlock(16, 2, window_size=4, shift_size=2).double()
    with torch.no_grad():
        out64 = mine64(x64)
        checks.check_dtype(out64, torch.float64, name="SwinBlock (shift 2) on a float64 map",
                           hint="give the mask the input's dtype: shifted_window_mask(...).to(x)")
        checks.check_close(out64, reference_with_weights_of(mine64, 16, 2, window_size=4, shift_size=2).double()(x64),
                           name="SwinBlock with shift 2 in float64")
    meta_block = SwinBlock(8, 2, window_size=4, shift_size=2).to("meta")
    checks.check_on_meta(lambda: meta_block(torch.empty(2, 8, 12, 8, device="meta")), name="your SwinBlock",
                         shape=(2, 8, 12, 8), hint="a tensor created inside forward is on the CPU: build the mask on x's "
                                                   "device, shifted_window_mask(...).to(x)")


checks.run(check_block, "Exercise 4 (SwinBlock.forward)", after=[check_windows, check_mask])
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
meta_block = SwinBlock(6, 2, window_size=3, shift_size=1).to("meta")
_ = checks.check_on_meta(lambda: meta_block(torch.empty(1, 6, 9, 6, device="meta")), name="your SwinBlock", shape=(1, 6, 9, 6),
                     hint="a tensor created inside forward is on the CPU: build the mask on x's device")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 1 — what the mask protects
#
# *Written answer, 2 points, scored by your instructor.*
#
# The cell below runs one of your shifted blocks ($M = 4$, $s = 2$) on an 8 × 8 map twice, once as it is
# and once with a mask of zeros, which lets the tokens that wrapped around attend to each other, and
# marks every output token whose value changed.
#
# **Predict** before you run it: which output tokens change? Draw or describe the set on the 8 × 8 grid
# (rows and columns 0 to 7), and say why the others do not change. **Then run it** and explain any
# difference from your prediction.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_mask", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Prediction**
#
# ### BEGIN SOLUTION
# Only tokens near the border change: a frame two tokens wide at the top and left (rows and columns 0
# and 1) and two tokens wide at the bottom and right (rows and columns 6 and 7). The 4 × 4 block in the
# middle stays the same.
# ### END SOLUTION
#
# **What happened, and why**
#
# ### BEGIN SOLUTION
# The changed tokens form exactly that frame: rows 0, 1, 6, 7 and columns 0, 1, 6, 7. The mask only
# acts inside windows that mix regions, and after the roll by $-2$ those are the windows of the last row
# and the last column of windows: rolled rows and columns 4 to 7. Rolled row $r'$ is original row
# $r' + 2 \bmod 8$, so they hold the original rows (and columns) 6, 7, 0 and 1. Every token of those
# windows has some token of another region in its window (the regions split each of them into two or
# four pieces), so every one of them changes once the mask is gone. The window in the middle of the
# shifted grid (original rows and columns 2 to 5) holds one region and never had a mask entry.
#
# **Rubric** (2 points). 1 point: the prediction is written before the result, and the explanation
# identifies the changed set as the tokens of the windows that contain wrapped-around tokens (a frame
# at the border, rows and columns 0, 1, 6, 7). 1 point: it explains why, through the roll by $-s$: the
# windows of the last window row and column of the rolled map hold tokens from opposite edges, only they
# have nonzero mask entries, and the interior window has none. A wrong prediction loses nothing if the
# explanation is right.
# ### END SOLUTION

# %% tags=["demo"]
torch.manual_seed(0)
block, x = SwinBlock(8, 2, window_size=4, shift_size=2).eval(), torch.randn(1, 8, 8, 8)
with torch.no_grad():
    masked = block(x)
    real_mask = shifted_window_mask
    try:
        shifted_window_mask = lambda *args: torch.zeros_like(real_mask(*args))  # nothing masked
        unmasked = block(x)
    finally:
        shifted_window_mask = real_mask
changed = (masked - unmasked).abs().amax(dim=-1)[0] > 1e-6  # (8, 8)
fig, ax = plt.subplots(figsize=(3.2, 3.2))
ax.imshow(changed.numpy(), cmap="Reds", vmin=0, vmax=1.4)
ax.set_xticks(range(8)), ax.set_yticks(range(8)), ax.set_title("changed without the mask", fontsize=10)
plt.show()
print(f"{int(changed.sum())} of 64 output tokens changed")

# %% [markdown]
# ## 5. Patch merging
#
# Between stages Swin shortens the sequence the way a strided convolution shrinks a CNN's map: each
# 2 × 2 block of neighbouring tokens becomes one token, with twice the channels. The four neighbours'
# vectors are concatenated into $4C$ channels, normalised with `LayerNorm(4C)` and projected by
# `Linear(4C, 2C, bias=False)`. The order of the concatenation is fixed by the pretrained weights of the
# official code, timm and torchvision: the row offset inside the 2 × 2 block varies fastest, so the
# neighbours come top-left, bottom-left, top-right, bottom-right. A map with an odd height or width is
# first padded with zeros at the bottom and right, as timm and torchvision do, so the output is
# $\lceil H/2 \rceil \times \lceil W/2 \rceil$.
#
# ### Exercise 5 — `PatchMerging` (3 points)
#
# Write `forward`: `(B, H, W, C)` → `(B, ⌈H/2⌉, ⌈W/2⌉, 2C)`, for any $H$ and $W$, on the input's device.

# %% nbgrader={"grade": false, "grade_id": "merging", "locked": false, "schema_version": 3, "solution": true, "task": false}
class PatchMerging(nn.Module):
    """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        ### BEGIN SOLUTION
        H, W = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))  # zeros after the last column and row of an odd map
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)  # (B, H/2, W/2, 4C)
        return self.reduction(self.norm(x))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_merging", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def check_merging():
    torch.manual_seed(0)
    mine, theirs = PatchMerging(2), ref.PatchMerging(2)
    with torch.no_grad():
        mine.norm.weight.normal_(), mine.norm.bias.normal_()
    theirs.load_state_dict(mine.state_dict())
    x = torch.randn(2, 4, 6, 2)
    checks.check_shape(mine(x), (2, 2, 3, 4), name="PatchMerging(2) on (2, 4, 6, 2)", hint="(B, H/2, W/2, 2C)")
    blocks = x.reshape(2, 2, 2, 3, 2, 2)  # (B, block row, row offset, block column, column offset, C)
    order = lambda *p: torch.cat([blocks[:, :, dy, :, dx] for dy, dx in p], dim=-1)
    with torch.no_grad():
        checks.check_close(mine(x), theirs(x), name="PatchMerging(2) on (2, 4, 6, 2)",
                           mistakes={"the neighbours in row-major order (top-left, top-right, bottom-left, bottom-right)":
                                     theirs.reduction(theirs.norm(order((0, 0), (0, 1), (1, 0), (1, 1)))),
                                     "the channels of the four neighbours interleaved":
                                     theirs.reduction(theirs.norm(torch.stack([blocks[:, :, dy, :, dx] for dy, dx in
                                                                               ((0, 0), (1, 0), (0, 1), (1, 1))], -1).flatten(-2))),
                                     "leaving out the norm": theirs.reduction(order((0, 0), (1, 0), (0, 1), (1, 1)))},
                           hint="concatenate top-left, bottom-left, top-right, bottom-right (x[:, 0::2, 0::2], "
                                "x[:, 1::2, 0::2], ...) along the channels, then norm, then reduction")
        odd = torch.randn(1, 5, 3, 2)
        checks.check_shape(mine(odd), (1, 3, 2, 4), name="PatchMerging(2) on an odd (1, 5, 3, 2) map",
                           hint="pad an odd map with one row or column of zeros: F.pad(x, (0, 0, 0, W % 2, 0, H % 2))")
        padded_top_left = F.pad(odd, (0, 0, 1, 0, 1, 0))
        checks.check_close(mine(odd), theirs(odd), name="PatchMerging(2) on an odd (1, 5, 3, 2) map",
                           mistakes={"padding at the top and left": theirs(padded_top_left)},
                           hint="the zeros go after the last row and the last column (bottom and right)")
    checks.check_on_meta(lambda: PatchMerging(4).to("meta")(torch.empty(2, 5, 6, 4, device="meta")), shape=(2, 3, 3, 8),
                         name="your PatchMerging",
                         hint="create any tensor inside forward on x's device (device=x.device; F.pad and slicing keep it)")


checks.run(check_merging, "Exercise 5 (PatchMerging)",
           hint="pad an odd map with zeros after its last row or column first: F.pad(x, (0, 0, 0, W % 2, 0, H % 2))")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 4)
for B, H, W, dim in [(3, 8, 10, 6), (1, 2, 4, 3), (2, 6, 6, 5), (2, 7, 9, 3), (1, 1, 1, 2)]:
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
                       hint="neighbours top-left, bottom-left, top-right, bottom-right; zeros after an odd map's last row "
                            "or column; then the norm, then the reduction")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 — patch merging as a convolution
#
# *Written answer, 2 points, scored by your instructor.*
#
# Without its LayerNorm, `PatchMerging` is a convolution in disguise. Which one (kernel size, stride,
# input and output channels), and how would you copy `reduction.weight` into its kernel (which entry of
# the kernel does each of the $4C$ input columns become)? Then say what the LayerNorm in between changes:
# why can no convolution followed by anything per-pixel reproduce `reduction(norm(...))`?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_merging_conv", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Without the norm it is a `Conv2d(C, 2C, kernel_size=2, stride=2, bias=False)` on the channels-first map:
# each output pixel is a linear function of exactly the four input pixels of its 2 × 2 block, with the
# same weights for every block. `reduction.weight` has shape `(2C, 4C)`; its columns come in four groups
# of $C$, one per neighbour in the order top-left, bottom-left, top-right, bottom-right, so the group
# $k$ becomes the kernel entry at (row offset $k \bmod 2$, column offset $k // 2$):
# `kernel[:, :, dy, dx] = weight[:, (2 * dx + dy) * C:(2 * dx + dy + 1) * C]`.
#
# The LayerNorm acts on the concatenated $4C$ vector of each block, before the linear map: it subtracts
# the mean and divides by the standard deviation taken over all four neighbours together. That is a
# nonlinear function of the whole block, not of each input pixel separately, so it cannot be moved
# after the convolution or folded into its weights; a convolution followed by a per-pixel normalisation
# normalises the $2C$ outputs, a different function.
#
# **Rubric** (2 points). 1 point: a 2 × 2 convolution with stride 2, $C$ to $2C$ channels, no bias, with
# a correct mapping of the four column groups to the kernel positions (the column-major order of the
# neighbours). 1 point: the norm is computed over the four neighbours' concatenated features, before
# the linear map, and is nonlinear in the block, so no convolution followed by a per-pixel operation
# equals it.
# ### END SOLUTION
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
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(0, 16, 4))
    ax.set_yticks(range(0, 16, 4))
    ax.grid(color="grey", lw=0.5)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Go further: reach across a patch merging
#
# The experiment above stays at one resolution. Swin's stages do not: after two blocks, a
# `PatchMerging` halves the grid, and the next blocks' windows cover twice the image extent.
#
# **What to try.** On a 32 × 32 map, stack two of your blocks (shifts 0 and 2, $M = 4$), your
# `PatchMerging`, then two more blocks of the doubled width; back-propagate from one output token of
# the 16 × 16 result to the input (as `receptive_field` does), and compare the field with that of four
# blocks at the full resolution.
#
# **What to look for.** The field of the four full-resolution blocks is about $4M$ tokens wide; after
# the merge, each block adds about $2M$ input tokens instead of $M$. **How to tell it worked:** count
# the field's width in input tokens before and after the merge; the blocks after it should add about
# twice as much per block, and a grid of side $G$ should be covered after about half as many blocks.

# %% [markdown]
# ## Takeaways
#
# - Window attention costs $O(HW \cdot M^2)$: linear in the number of pixels at a fixed window size.
# - Shifting the windows by $M/2$ every other block, with a roll and a 9-region mask, lets information
#   cross window borders; within a stage the reach grows by about a window per shifted pair.
# - Patch merging halves the grid and doubles the channels (a strided 2 × 2 convolution with a LayerNorm
#   inside), giving CNN-like pyramids (H/4 ... H/32) that detection and segmentation heads consume.
# - The mask matters only in the windows that wrapped around: a frame at the border of the map.
