# %% [markdown]
# # Chapter 7 — Swin: windows, shifts and a feature pyramid
#
# A ViT attends globally: every token to every token, a cost that grows with the square of the number
# of tokens. Swin (Liu et al., 2021) attends inside small $M \times M$ windows instead, shifts the windows
# in every second block so information crosses their borders, and merges patches between stages to build
# a pyramid of feature maps, like a CNN's. The course's `vitcourse.models.swin.SwinTransformer` equals
# timm's and torchvision's Swin-T to the last bit; here you build its distinctive parts.
#
# **Imports:** your answers may use Python's standard library, `torch`, `torchvision`, `numpy` and
# `einops`, besides what the notebook imports for you; these are installed wherever the notebook is
# graded, other packages may not be.
#
# **You will** write `window_partition` / `window_reverse`, the relative position index, the mask of the
# shifted windows, patch merging and the forward pass of a shifted block, and watch information cross
# window borders. 20 points in all.

# %%
# Set-up: on Colab this installs the course library; everywhere it picks the device and run budget.
import sys
if "google.colab" in sys.modules:
    # %pip install -q "vitcourse @ git+https://github.com/vit-from-scratch/vit-course"

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

# %% nbgrader={"grade": false, "grade_id": "windows", "locked": false, "schema_version": 3, "solution": true, "task": false}
def window_partition(x, window_size):
    """(B, H, W, C) -> (B * nW, M, M, C)."""
    ### BEGIN SOLUTION
    B, H, W, C = x.shape
    M = window_size
    x = x.reshape(B, H // M, M, W // M, M, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, M, M, C)
    ### END SOLUTION


def window_reverse(windows, window_size, H, W):
    """(B * nW, M, M, C) -> (B, H, W, C)."""
    ### BEGIN SOLUTION
    M, C = window_size, windows.shape[-1]
    x = windows.reshape(-1, H // M, W // M, M, M, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_windows", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
x = torch.randn(2, 8, 12, 3)
w = window_partition(x, 4)
checks.check_shape(w, (12, 4, 4, 3), name="window_partition of (2, 8, 12, 3) with M=4")
checks.check_close(w[1], x[0, :4, 4:8], name="window 1 of image 0", hint="windows in row-major order: window 1 is right of window 0")
checks.check_close(window_reverse(w, 4, 8, 12), x, name="window_reverse(window_partition(x))")
print("windows: visible checks passed")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed())
for _ in range(3):
    M = int(torch.randint(1, 5, (1,), generator=g))
    h, w_ = (int(v) for v in torch.randint(1, 4, (2,), generator=g))
    x = torch.randn(2, h * M, w_ * M, 3, generator=g)
    checks.check_close(window_partition(x, M), ref.window_partition(x, M), name=f"window_partition, M={M}")
    win = ref.window_partition(x, M)
    checks.check_close(window_reverse(win, M, h * M, w_ * M), x, name=f"window_reverse, M={M}")
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
# Return a `(M*M, M*M)` integer tensor.

# %% nbgrader={"grade": false, "grade_id": "rel_index", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relative_position_index(window_size):
    ### BEGIN SOLUTION
    M = window_size
    ys, xs = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dy = ys[:, None] - ys[None, :] + M - 1
    dx = xs[:, None] - xs[None, :] + M - 1
    return dy * (2 * M - 1) + dx
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rel_index", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
idx = relative_position_index(2)
checks.check_shape(idx, (4, 4), name="relative_position_index(2)")
checks.check_equal(int(idx[0, 0]), 4, name="index of a token with itself for M=2 (the centre of the 3x3 table)")
checks.check_equal(int(idx[0, 1]), 3, name="index(query (0,0), key (0,1)): dy=0, dx=-1",
                   hint="(dy + M - 1) * (2M - 1) + (dx + M - 1), with dy = y_query - y_key")
print("relative_position_index: visible checks passed")
### BEGIN HIDDEN TESTS
for M in (3, 4, 7):
    checks.check_equal(relative_position_index(M), ref.relative_position_index(M), name=f"relative_position_index({M})")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Shifted windows and their mask
#
# Every second block shifts the window grid by $s = \lfloor M/2 \rfloor$. Rather than padding, Swin rolls the
# map by $-s$ in both directions (`torch.roll`), partitions as usual, and rolls back by $+s$ after
# attention. The windows at the bottom and right edges then contain tokens that were far apart in the
# image (they wrapped around). A mask stops them from attending to each other: label the rolled map's
# pixels by 9 regions — rows `[0, H-M)`, `[H-M, H-s)`, `[H-s, H)` times the same for columns — and give
# `-100` to every pair of tokens in one window with different labels, `0` otherwise.
#
# ### Exercise 3 — `shifted_window_mask` (4 points)
#
# Return `(nW, M*M, M*M)` floats for an `height x width` map (one image). Use your `window_partition` on a
# `(1, H, W, 1)` map of region labels.

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
    labels = window_partition(region, M).reshape(-1, M * M)
    return (labels[:, None, :] != labels[:, :, None]).float() * -100.0
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_mask", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
mask = shifted_window_mask(8, 8, 4, 2)
checks.check_shape(mask, (4, 16, 16), name="shifted_window_mask(8, 8, 4, 2)")
checks.check_true(bool((mask[0] == 0).all()), "the top-left window holds one region only: its mask must be all zeros")
checks.check_true(bool((mask[3] != 0).any()), "the bottom-right window mixes 4 regions: some pairs must be masked")
checks.check_equal(int((mask[3] == 0).sum()), 4 * 16, name="unmasked pairs in the bottom-right window (4 regions of 4 tokens)")
print("shifted_window_mask: visible checks passed")
### BEGIN HIDDEN TESTS
for H, W, M, s in [(14, 14, 7, 3), (8, 12, 4, 2), (12, 6, 3, 1)]:
    checks.check_equal(shifted_window_mask(H, W, M, s), ref.shifted_window_mask(H, W, M, s),
                       name=f"shifted_window_mask({H}, {W}, {M}, {s})")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. A shifted block
#
# The forward pass of a block with shift $s$: `norm1`, roll by $(-s, -s)$, partition into windows,
# window attention with the mask, reverse, roll by $(+s, +s)$, residual; then `norm2`, MLP, residual.
#
# ### Exercise 4 — `swin_block_forward` (4 points)
#
# `block` is a `vitcourse.models.swin.SwinBlock` (attributes `norm1`, `attn`, `norm2`, `mlp`,
# `window_size`, `shift_size`); `block.attn(windows, mask)` takes `(B*nW, M*M, C)` and a mask or `None`.
# Use your functions from above.

# %% nbgrader={"grade": false, "grade_id": "block", "locked": false, "schema_version": 3, "solution": true, "task": false}
def swin_block_forward(block, x):
    """(B, H, W, C) -> (B, H, W, C)."""
    ### BEGIN SOLUTION
    B, H, W, C = x.shape
    M, s = block.window_size, block.shift_size
    y = block.norm1(x)
    if s:
        y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
    mask = shifted_window_mask(H, W, M, s) if s else None
    windows = block.attn(window_partition(y, M).reshape(-1, M * M, C), mask)
    y = window_reverse(windows.reshape(-1, M, M, C), M, H, W)
    if s:
        y = torch.roll(y, shifts=(s, s), dims=(1, 2))
    x = x + y
    return x + block.mlp(block.norm2(x))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_block", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
for shift in (0, 2):
    block = ref.SwinBlock(16, 2, window_size=4, shift_size=shift).eval()
    x = torch.randn(2, 8, 8, 16)
    with torch.no_grad():
        checks.check_close(swin_block_forward(block, x), block(x), atol=1e-5, name=f"block with shift {shift}",
                           hint="roll by -shift before attention and by +shift after")
print("swin_block_forward: visible checks passed")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed())
for H, W, M, s in [(12, 12, 4, 2), (14, 7, 7, 3), (6, 9, 3, 1)]:
    block = ref.SwinBlock(12, 3, window_size=M, shift_size=s).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
        x = torch.randn(1, H, W, 12, generator=g)
        checks.check_close(swin_block_forward(block, x), block(x), atol=1e-4, name=f"block {H}x{W}, M={M}, shift={s}")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Patch merging
#
# Between stages, every 2 × 2 group of neighbours becomes one token: concatenate their features in the
# official order `x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]` (rows are the first spatial
# axis), apply `LayerNorm(4C)` and a `Linear(4C, 2C, bias=False)`. The grid halves, the channels double.
#
# ### Exercise 5 — `PatchMerging` (4 points)

# %% nbgrader={"grade": false, "grade_id": "merging", "locked": false, "schema_version": 3, "solution": true, "task": false}
class PatchMerging(nn.Module):
    """(B, H, W, C) -> (B, H/2, W/2, 2C)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        ### BEGIN SOLUTION
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
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
g = torch.Generator().manual_seed(env.grading_seed())
mine, theirs = PatchMerging(6), ref.PatchMerging(6)
with torch.no_grad():
    for p in mine.parameters():
        p.copy_(torch.randn(p.shape, generator=g))
theirs.load_state_dict(mine.state_dict())
x = torch.randn(3, 8, 10, 6, generator=g)
checks.check_close(mine(x), theirs(x), atol=1e-4, name="PatchMerging on (3, 8, 10, 6)")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. How far does information travel?
#
# Take the gradient of one output token of a stack of blocks with respect to the input: the nonzero
# region is that token's receptive field. With no shift it never leaves the window; with alternating
# shifts it grows by about one window per pair of blocks — linearly, not logarithmically. Patch merging is
# what makes reach across the whole image cheap.

# %%
torch.manual_seed(0)
def receptive_field(shifts, size=16, M=4):
    blocks = [ref.SwinBlock(8, 2, window_size=M, shift_size=s).eval() for s in shifts]
    x = torch.randn(1, size, size, 8, requires_grad=True)
    y = x
    for b in blocks:
        y = swin_block_forward(b, y)
    y[0, 6, 6].sum().backward()
    return (x.grad[0].abs().sum(-1) > 0).float()

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
settings = [("2 blocks, no shift", [0, 0]), ("2 blocks, shift", [0, 2]), ("4 blocks, shift", [0, 2, 0, 2]),
            ("6 blocks, shift", [0, 2, 0, 2, 0, 2])]
for ax, (title, shifts) in zip(axes, settings):
    ax.imshow(receptive_field(shifts).numpy(), cmap="Blues"); ax.plot(6, 6, "r*"); ax.set_title(title, fontsize=9)
    ax.set_xticks(range(-0, 16, 4)); ax.set_yticks(range(0, 16, 4)); ax.grid(color="grey", lw=0.5)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Takeaways
#
# - Window attention costs $O(HW \cdot M^2)$: linear in the number of pixels at a fixed window size.
# - Shifting the windows by $M/2$ every other block, with a roll and a 9-region mask, lets information
#   cross window borders; within a stage the reach grows by about a window per shifted pair.
# - Patch merging halves the grid and doubles the channels, giving CNN-like pyramids (H/4 ... H/32) that
#   detection and segmentation heads consume.
