# %% [markdown]
# # Chapter 3 — The encoder and a complete ViT
#
# You now have tokens with positions and a class token. This chapter builds the transformer encoder that
# reads them — multi-head self-attention, the MLP, the pre-norm block — assembles a complete Vision
# Transformer, checks it against the course's reference (itself checked against timm and torchvision),
# and trains it on real data.
#
# **You will**
#
# 1. write attention explicitly, $\mathrm{softmax}(QK^\top/\sqrt{d})\,V$, and compare it with PyTorch's
#    fused `F.scaled_dot_product_attention` (`attention`);
# 2. build multi-head self-attention (`Attention`), the `Mlp` and the pre-norm `Block` (the names of
#    timm's and the course's classes, so their weights load into yours);
# 3. assemble `ViT` and load reference weights into it;
# 4. make it overfit one batch (a test every model should pass before real training), train it on the
#    digits and look at what its class token attends to.

# %% [markdown]
# This notebook is the exercise of [Chapter 3 — The encoder and a complete ViT](https://vit-from-scratch.github.io/vit-course/book/03-vit.html)
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
# **Time and points.** Top to bottom, the notebook runs in about 30 seconds on a two-core CPU
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
import time
import torch
import torch.nn.functional as F
from torch import nn
from vitcourse import analysis, checks, data, env, train, viz
from vitcourse.models.patches import PatchEmbed
from vitcourse.models.vit import DIGITS_VIT

DEVICE, BUDGET = env.device(), env.budget()
print(env.describe())


# %% [markdown]
# ## 1. Attention
#
# For queries $Q \in \mathbb{R}^{N \times d}$, keys $K$ and values $V$ of the same shape, attention
# returns for each query a weighted average of the values:
#
# $$
# \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d}}\right) V .
# $$
#
# The softmax runs over the **keys** (the last axis of $QK^\top$), so each row of the attention matrix
# is a probability distribution. Dividing by $\sqrt{d}$ keeps the scores' spread independent of the head
# width, so the softmax does not saturate.
#
# Often some keys must stay out of reach: the padding tokens of a batch of sequences of different
# lengths, the future tokens of a text decoder, the tokens of other windows in Swin (chapter 7). A
# boolean **mask** says which keys each query may read; the scores of the others are set to $-\infty$
# before the softmax, so their weights come out exactly 0 while each row still sums to 1.
#
# ### Exercise 1 — `attention` (4 points)
#
# `q`, `k`, `v` have shape `(..., N, d)` (any leading dims, e.g. batch and heads, or none). Return the
# output `(..., N, d)` and the attention matrix `(..., N, N)`, in the dtype of the inputs. `mask`, when
# given, is a boolean tensor that broadcasts to `(..., N, N)` (for example `(N, N)` for every image and
# head): `mask[..., i, j]` is `True` where query `i` may attend to key `j`, the convention of
# `F.scaled_dot_product_attention`'s boolean `attn_mask`. Every query keeps at least one key. Do not
# call `F.scaled_dot_product_attention`.

# %% nbgrader={"grade": false, "grade_id": "attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
def attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d)) v, explicitly; keys where ``mask`` is False get weight 0.
    Returns (output (..., N, d), weights (..., N, N))."""
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])   # (..., N, N)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_attention", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def check_attention():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 5, 8).unbind(0)   # each (batch 2, heads 4, N 5, d 8)
    out, weights = attention(q, k, v)
    checks.check_shape(out, (2, 4, 5, 8), name="attention output")
    checks.check_shape(weights, (2, 4, 5, 5), name="attention weights")
    checks.check_sums_to_one(weights, dim=-1, name="attention rows", hint="softmax over the keys: dim=-1 of the scores")
    scores = q @ k.transpose(-2, -1)
    checks.check_close(out, F.scaled_dot_product_attention(q, k, v), name="attention output",
                       mistakes={"leaving the scores unscaled": scores.softmax(-1) @ v,
                                 "dividing the scores by d instead of sqrt(d)": (scores / 8).softmax(-1) @ v},
                       hint="scale the scores by 1/sqrt(d), d = q.shape[-1]")
    out64, _ = attention(q.double(), k.double(), v.double())
    checks.check_dtype(out64, torch.float64, name="attention of float64 inputs", hint="keep the inputs' dtype: no .float()")
    checks.check_on_meta(lambda: attention(*torch.empty(3, 2, 4, 5, 8, device="meta").unbind(0)), name="attention",
                         shape=(2, 4, 5, 8), hint="scale with a Python number (math.sqrt(d)), or create tensors with "
                                                  "device=q.device")
    # A padding mask (B, 1, 1, N), shared by every head and query: image 0 has 4 real tokens, image 1 has 3.
    mask = (torch.arange(5) < torch.tensor([4, 3])[:, None]).reshape(2, 1, 1, 5)
    out, weights = attention(q, k, v, mask=mask)
    scaled = scores / math.sqrt(8)
    checks.check_close(weights, scaled.masked_fill(~mask, float("-inf")).softmax(-1), name="weights with a mask",
                       mistakes={"ignoring the mask": scaled.softmax(-1),
                                 "inverting the mask (True must mean: may attend)":
                                     scaled.masked_fill(mask, float("-inf")).softmax(-1),
                                 "setting the masked scores to 0 instead of -inf": scaled.masked_fill(~mask, 0).softmax(-1),
                                 "zeroing masked weights after the softmax without renormalising the rows":
                                     scaled.softmax(-1) * mask},
                       hint="before the softmax, scores.masked_fill(~mask, float('-inf')): masked keys get weight "
                            "exactly 0 and every row still sums to 1")
    checks.check_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), name="output with a mask",
                       hint="the output is the masked weights @ v")
    checks.check_on_meta(lambda: attention(*torch.empty(3, 2, 4, 5, 8, device="meta").unbind(0),
                                           mask=torch.ones(5, 5, dtype=torch.bool, device="meta")),
                         name="attention with a mask", shape=(2, 4, 5, 8),
                         hint="fill with a Python number (float('-inf')), not a tensor made on the CPU")


checks.run(check_attention, "Exercise 1 (attention)",
           hint="swap the last two dims of k with k.transpose(-2, -1): with heads in front, dims 1 and 2 are not those")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed())
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for lead in [(draw(1, 4), draw(2, 6)), (), (draw(2, 5),), (2, draw(2, 4), 3)]:   # (B, heads), none, (B,), three
    N, d = draw(2, 10), draw(2, 33)
    dtype = torch.float64 if len(lead) == 1 else torch.float32
    q, k, v = (torch.randn(*lead, N, d, generator=g, dtype=dtype) * 3 for _ in range(3))
    scores = q.double() @ k.double().transpose(-2, -1) / math.sqrt(d)
    # no mask, a mask of (N, N), a mask of the full shape; every query keeps key 0 (a row needs one key)
    masks = [None, torch.rand(N, N, generator=g) < 0.5, torch.rand(*lead, N, N, generator=g) < 0.3]
    for mask in masks:
        if mask is not None:
            mask[..., 0] = True
        out, weights = attention(q, k, v) if mask is None else attention(q, k, v, mask=mask)
        expected_weights = (scores if mask is None else scores.masked_fill(~mask, float("-inf"))).softmax(dim=-1)
        what = f"q, k, v of shape {tuple(q.shape)}" + ("" if mask is None else f" and a mask of shape {tuple(mask.shape)}")
        checks.check_close(weights, expected_weights, atol=1e-5, name=f"attention weights for {what}")
        checks.check_close(out, expected_weights @ v.double(), atol=1e-5, name=f"attention output for {what}")
        checks.check_true(out.dtype == dtype and weights.dtype == dtype,
                          f"{dtype} inputs gave an output of {out.dtype} and weights of {weights.dtype}")
_ = checks.check_on_meta(lambda: attention(*(torch.empty(2, 3, 5, 4, device="meta") for _ in range(3)),
                                          mask=torch.ones(3, 5, 5, dtype=torch.bool, device="meta")),
                         name="attention", shape=(2, 3, 5, 4),
                         hint="scale with a Python number (math.sqrt(d)), or create tensors with device=q.device")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Multi-head self-attention
#
# In *self*-attention the queries, keys and values all come from the same tokens, through learned
# projections. With $h$ heads the width $D$ is split into $h$ slices of $d = D/h$; each head attends on
# its own slice, and an output projection mixes the heads again. One `Linear(D, 3D)` computes $q$, $k$
# and $v$ at once; its output is laid out as `(B, N, 3, heads, head_dim)`: that layout is what timm,
# torchvision and the reference use, and it matters when weights are copied from them.
#
# ### Exercise 2 — `Attention` (3 points)
#
# Attributes `qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)` and `proj = nn.Linear(dim, dim)`.
# `forward(x)` maps `(B, N, D)` to `(B, N, D)` and stores the attention weights
# `(B, heads, N, N)` in `self.last_attn` (for the pictures later). Use your `attention`. The hidden checks
# load the reference's weights into yours (so the module owns exactly `qkv` and `proj`) and try one to
# eight heads, with and without the `qkv` bias.

# %% nbgrader={"grade": false, "grade_id": "mhsa", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.last_attn = None

    def forward(self, x):
        ### BEGIN SOLUTION
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)                       # each (B, heads, N, head_dim)
        out, self.last_attn = attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_mhsa", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from vitcourse.models import vit as ref


def check_mhsa():
    torch.manual_seed(0)
    mine, theirs = Attention(32, 4, qkv_bias=False), ref.Attention(32, 4, qkv_bias=False)
    checks.check_equal(sorted(mine.state_dict()), sorted(theirs.state_dict()), name="parameters of Attention(32, 4, "
                       "qkv_bias=False)", hint="own exactly qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias) and proj")
    mine.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 7, 32)                                                  # (B, N, D), 4 heads of width 8
    out = mine(x)
    q, k, v = theirs.qkv(x).reshape(2, 7, 3, 4, 8).permute(2, 0, 3, 1, 4)      # each (B, heads, N, head_dim)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(8)).softmax(dim=-1)
    checks.check_close(mine.last_attn, weights, name="last_attn, the weights of the 4 heads",
                       mistakes={"scaling by sqrt(dim) instead of sqrt(head_dim)":
                                 (q @ k.transpose(-2, -1) / math.sqrt(32)).softmax(dim=-1)},
                       hint="split qkv(x) as (B, N, 3, heads, head_dim), then permute(2, 0, 3, 1, 4) and unbind(0) "
                            "into q, k, v of shape (B, heads, N, head_dim)")
    heads = weights @ v                                                        # (B, heads, N, head_dim)
    checks.check_close(out, theirs(x), name="Attention output",
                       mistakes={"leaving out the output projection proj": heads.transpose(1, 2).reshape(2, 7, 32),
                                 "merging the heads without transpose(1, 2)": theirs.proj(heads.reshape(2, 7, 32))},
                       hint="merge the heads back with out.transpose(1, 2).reshape(B, N, D), then apply proj")


checks.run(check_mhsa, "Exercise 2 (Attention)", after=[check_attention])
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 1)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for heads, bias in [(1, True), (3, False), (8, True), (draw(2, 5), False)]:
    dim = heads * draw(2, 9)
    theirs = ref.Attention(dim, heads, qkv_bias=bias, fused=heads != 8)   # the reference's explicit path once
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    mine = Attention(dim, heads, qkv_bias=bias)
    checks.check_equal(sorted(mine.state_dict()), sorted(theirs.state_dict()),
                       name=f"parameters of Attention({dim}, {heads}, qkv_bias={bias})")
    mine.load_state_dict(theirs.state_dict())
    B, N = draw(1, 4), draw(1, 9)
    x = torch.randn(B, N, dim, generator=g)
    checks.check_close(mine(x), theirs(x), atol=1e-5, name=f"Attention(dim={dim}, heads={heads}, qkv_bias={bias}) "
                       f"on {tuple(x.shape)}")
    q, k, _ = theirs.qkv(x).reshape(B, N, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    expected = (q @ k.transpose(-2, -1) / math.sqrt(dim // heads)).softmax(dim=-1)
    checks.check_close(mine.last_attn, expected, atol=1e-5, name=f"last_attn of Attention(dim={dim}, heads={heads})",
                       hint="store the (B, heads, N, N) softmax weights of the last forward pass")
x = torch.randn(2, 5, 16, generator=g, dtype=torch.float64)
checks.check_true(Attention(16, 4).double()(x).dtype == torch.float64, "a float64 Attention on float64 tokens should return float64")
out = checks.check_on_meta(lambda: Attention(16, 4).to("meta")(torch.empty(2, 5, 16, device="meta")), name="Attention",
                           hint="create no tensor on a fixed device in forward (use Python numbers or device=x.device)")
_ = checks.check_shape(out, (2, 5, 16), name="Attention(16, 4) on (2, 5, 16) meta tokens")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 1 — more heads, more parameters?
#
# *Written answer, 2 points, scored by your instructor.*
#
# Your `Attention(64, num_heads)` splits a width of 64 into heads. **Before you run the next cell,
# predict** how two numbers change when `num_heads` goes from 1 to 4 to 16, on one image of 197 tokens
# (the sequence of a ViT-B/16 at 224 px): the number of parameters of the module, and the number of
# attention weights it computes (`last_attn.numel()`). Write your prediction and its reason under
# **Prediction**. Then run the cell and explain under **What happened, and why** what it shows, and
# where your prediction was wrong, if it was.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_heads", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Prediction**
#
# ### BEGIN SOLUTION
# The parameters stay the same, the attention weights grow with the number of heads.
# ### END SOLUTION
#
# **What happened, and why**
#
# ### BEGIN SOLUTION
# The module has 16,640 parameters whatever the number of heads: `qkv` is a 64 → 192 linear layer
# (12,288 weights and 192 biases) and `proj` a 64 → 64 one (4,096 + 64). The heads only decide how the
# 192 outputs of `qkv` are grouped (1 × 64, 4 × 16 or 16 × 4 channels per query, key and value).
# The attention weights are one 197 × 197 matrix per head: 38,809, 155,236 and 620,944 numbers. The
# multiply-adds of $QK^\top$ stay at $N^2 D$ (each head works on $D/h$ channels), but the memory of the
# attention maps, and of the softmax, grows linearly with the heads: more heads cost memory, not
# parameters.
#
# **Rubric (2 points).** 1 point: the parameter count is unchanged, with the reason (the sizes of
# `qkv` and `proj` depend on the width only). 1 point: the attention weights grow in proportion to the
# number of heads (one $N \times N$ matrix per head), with the numbers or the factor 4 per step. A
# wrong prediction loses nothing when the explanation names what was wrong.
# ### END SOLUTION

# %% tags=["demo"]
tokens = torch.randn(1, 197, 64)
print(f"{'heads':>5} {'head width':>10} {'parameters':>10} {'attention weights':>17}")
for heads in (1, 4, 16):
    mha = Attention(64, heads)
    with torch.no_grad():
        mha(tokens)
    print(f"{heads:>5} {64 // heads:>10} {sum(p.numel() for p in mha.parameters()):>10,} {mha.last_attn.numel():>17,}")

# %% [markdown]
# ## 3. The block
#
# A transformer block has two residual branches, each starting with a LayerNorm (the **pre-norm**
# arrangement of ViT, which trains more stably than the post-norm of the original Transformer):
#
# $$
# x \leftarrow x + \mathrm{MHSA}(\mathrm{LN}_1(x)), \qquad x \leftarrow x + \mathrm{MLP}(\mathrm{LN}_2(x)),
# $$
#
# with $\mathrm{MLP}(x) = W_2\, \mathrm{GELU}(W_1 x + b_1) + b_2$, hidden width `mlp_ratio * dim`. ViT uses
# LayerNorm with `eps=1e-6` and the exact (erf) GELU, `nn.GELU()`.
#
# ### Exercise 3 — `Mlp` and `Block` (3 points)
#
# `Mlp(in_features, hidden_features)` maps `(B, N, D)` to `(B, N, D)` through the hidden width. Use the
# attribute names of the reference (so weights can be copied): `Mlp.fc1`, `Mlp.fc2`;
# `Block.norm1`, `Block.attn`, `Block.norm2`, `Block.mlp` (two separate LayerNorms), hidden width
# `int(dim * mlp_ratio)`, `qkv_bias` passed to the attention. No dropout. The check compares your block
# with the reference, with the same weights, on ordinary tokens and on very faint ones: LayerNorm divides
# by $\sqrt{\mathrm{Var}(x) + \epsilon}$, so on tokens whose variance is near $\epsilon$ the choice of
# `eps` shows.

# %% nbgrader={"grade": false, "grade_id": "block", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        ### BEGIN SOLUTION
        self.fc1, self.act = nn.Linear(in_features, hidden_features), nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.fc2(self.act(self.fc1(x)))
        ### END SOLUTION


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True):
        super().__init__()
        ### BEGIN SOLUTION
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_block", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def randomised(module, seed=0):
    """The module with every weight drawn at random (LayerNorm scales around 1), as after some training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    return module


def check_block():
    torch.manual_seed(0)
    # The MLP: fc1, exact GELU, fc2.
    mlp, ref_mlp = Mlp(16, 48), randomised(ref.Mlp(16, 48))
    checks.check_parameters(mlp, ref_mlp, name="Mlp(16, 48)", hint="fc1 = nn.Linear(in_features, hidden_features), "
                            "fc2 = nn.Linear(hidden_features, in_features), nothing else with weights")
    mlp.load_state_dict(ref_mlp.state_dict())
    x = torch.randn(2, 5, 16) * 2
    hidden = ref_mlp.fc1(x)
    mlp.eval()
    checks.check_close(mlp(x), ref_mlp(x), name="Mlp(16, 48) output",
                       mistakes={"the tanh approximation of GELU": ref_mlp.fc2(F.gelu(hidden, approximate="tanh")),
                                 "ReLU instead of GELU": ref_mlp.fc2(F.relu(hidden))},
                       hint="fc1, the exact GELU (nn.GELU(), not approximate='tanh'), fc2")
    checks.check_module(mlp, ref_mlp, x, name="Mlp(16, 48) output", hint="no dropout in the Mlp")
    # The block's parts, then its output: two residual branches, each starting with its own LayerNorm.
    block, ref_block = Block(32, 4, mlp_ratio=2.0, qkv_bias=False), randomised(ref.Block(32, 4, 2.0, qkv_bias=False))
    checks.check_parameters(block, ref_block, name="Block(32, 4, mlp_ratio=2.0, qkv_bias=False)",
                            hint="norm1 and norm2, two LayerNorms of their own; attn = Attention(dim, num_heads, qkv_bias) "
                                 "with qkv_bias passed on; mlp = Mlp(dim, int(dim * mlp_ratio))")
    block.load_state_dict(ref_block.state_dict())
    block.eval()
    x = torch.randn(2, 9, 32)
    default_eps = ref.Block(32, 4, 2.0, qkv_bias=False, norm_eps=1e-5)
    default_eps.load_state_dict(ref_block.state_dict())
    eps_mistake = "LayerNorm with PyTorch's default eps=1e-5 instead of ViT's 1e-6"
    attn, mlp, norm1, norm2 = ref_block.attn, ref_block.mlp, ref_block.norm1, ref_block.norm2
    after_attn = x + attn(norm1(x))
    post = norm1(x + attn(x))
    normalised = norm1(x)
    normalised = normalised + attn(normalised)
    checks.check_close(block(x), ref_block(x), name="Block output", inputs={"the input x": x},
                       mistakes={"post-norm, norm(x + f(x)), the arrangement of the original Transformer":
                                 norm2(post + mlp(post)),
                                 "leaving out the residual around the MLP": mlp(norm2(after_attn)),
                                 "leaving out the residual around the attention": attn(norm1(x)) + mlp(norm2(attn(norm1(x)))),
                                 "starting the residual from the normalised tokens": norm2(normalised) + mlp(norm2(normalised)),
                                 "feeding both branches the block's input (a parallel block)":
                                 x + attn(norm1(x)) + mlp(norm2(x)),
                                 eps_mistake: default_eps(x)},
                       hint="pre-norm: x = x + attn(norm1(x)), then x = x + mlp(norm2(x))")
    checks.check_module(block, ref_block, x, name="Block output", hint="no dropout in the block")
    # Faint tokens: LayerNorm divides by sqrt(variance + eps), so eps matters when the variance is small.
    faint = x * 1e-3
    checks.check_close(block(faint), ref_block(faint), name="Block output on faint tokens (values around 1e-3)",
                       mistakes={eps_mistake: default_eps(faint)},
                       hint="nn.LayerNorm(dim, eps=1e-6) for both norms: on faint tokens eps is not negligible")
    checks.check_dtype(Block(16, 2).double()(torch.randn(2, 5, 16, dtype=torch.float64)), torch.float64,
                       name="a float64 Block on float64 tokens", hint="create no float32 tensor in forward")
    checks.check_on_meta(lambda: Block(16, 2).to("meta")(torch.empty(2, 5, 16, device="meta")), name="Block",
                         shape=(2, 5, 16), hint="create no tensor on a fixed device in forward")


checks.run(check_block, "Exercise 3 (Mlp and Block)", after=[check_attention, check_mhsa])
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 2)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
for in_features, hidden in [(draw(2, 17), draw(8, 65)), (draw(17, 33), draw(2, 9))]:
    theirs = ref.Mlp(in_features, hidden)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)   # pre-activations spread over GELU's curve
    mine = Mlp(in_features, hidden)
    mine.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 5, in_features, generator=g)
    checks.check_close(mine(x), theirs(x), atol=1e-5, name=f"Mlp({in_features}, {hidden})",
                       hint="fc1, exact GELU (nn.GELU(), not approximate='tanh'), fc2")
for dim, heads, ratio, bias in [(16, 2, 2.0, True), (48, 3, 4.0, False), (24, 4, 3.0, True)]:
    theirs = ref.Block(dim, heads, ratio, qkv_bias=bias)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    mine = Block(dim, heads, ratio, qkv_bias=bias)
    checks.check_equal(len(list(mine.parameters())), len(list(theirs.parameters())),
                       name=f"number of parameter tensors of Block({dim}, {heads}, {ratio}, qkv_bias={bias})",
                       hint="two LayerNorms of their own (norm1, norm2), an Attention with qkv_bias, an Mlp")
    mine.load_state_dict(theirs.state_dict())
    mine.train()
    for scale in (2.0, 1e-3):
        x = torch.randn(draw(1, 4), draw(2, 8), dim, generator=g) * scale
        checks.check_close(mine(x), theirs(x), atol=1e-4, name=f"Block(dim={dim}, heads={heads}, mlp_ratio={ratio}, "
                           f"qkv_bias={bias}) on inputs of scale {scale:g}, training mode",
                           hint="pre-norm: x + attn(norm1(x)), then x + mlp(norm2(x)); LayerNorm eps=1e-6; no dropout")
x = torch.randn(2, 5, 16, generator=g, dtype=torch.float64)
checks.check_true(Block(16, 2).double()(x).dtype == torch.float64, "a float64 Block on float64 tokens should return float64")
out = checks.check_on_meta(lambda: Block(16, 2).to("meta")(torch.empty(2, 5, 16, device="meta")), name="Block",
                           hint="create no tensor on a fixed device in forward")
_ = checks.check_shape(out, (2, 5, 16), name="Block(16, 2) on (2, 5, 16) meta tokens")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The complete ViT
#
# Put it together: `PatchEmbed` (from chapter 1, imported from `vitcourse`), a class token and a
# learned position embedding over all $N + 1$ tokens (chapter 2), `depth` blocks, a final LayerNorm and a
# linear head on the class token's output.
#
# ### Exercise 4 — `ViT` (4 points)
#
# Names as in the reference: `patch_embed`, `cls_token` `(1, 1, D)`, `pos_embed` `(1, N + 1, D)` (both
# initialised with `torch.randn(...) * 0.02`), `blocks` (an `nn.ModuleList` of `depth` separate blocks,
# each with `mlp_ratio`), `norm` (`eps=1e-6`), `head`. The number of patches $N$ is
# `self.patch_embed.num_patches` (its grid, rows and columns, is the tuple `self.patch_embed.grid_size`).
# `forward_features(x)` returns all tokens after the final norm, `(B, N + 1, D)`; `forward(x)` returns
# logits `(B, num_classes)` from the class token. The check compares both methods with the reference
# (with the same weights, also on faint tokens) and checks that a gradient reaches every parameter; the
# hidden checks do the same for other sizes, channels, widths, depths and MLP ratios.

# %% nbgrader={"grade": false, "grade_id": "vit", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ViT(nn.Module):
    def __init__(self, img_size=16, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                 num_heads=4, mlp_ratio=4.0):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        ### BEGIN SOLUTION
        N = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, N + 1, embed_dim) * 0.02)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        ### END SOLUTION

    def forward_features(self, x):
        ### BEGIN SOLUTION
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.head(self.forward_features(x)[:, 0])
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_vit", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def check_vit():
    torch.manual_seed(0)
    cfg = dict(img_size=16, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=3, num_heads=4, mlp_ratio=2.0)
    mine, theirs = ViT(**cfg), randomised(ref.ViT(**cfg))
    # The parts: depth separate blocks in a module list, then every parameter with the reference's name and shape.
    checks.check_true(isinstance(mine.blocks, nn.Module) and len(mine.blocks) == 3,
                      f"ViT(depth=3).blocks should be an nn.ModuleList of 3 blocks, got {type(mine.blocks).__name__}",
                      hint="a Python list hides the blocks' parameters from the optimizer and the state dict: "
                           "nn.ModuleList([Block(...) for _ in range(depth)])")
    checks.check_true(len({id(block) for block in mine.blocks}) == 3,
                      "ViT(depth=3).blocks holds one Block object several times, so the layers share their weights",
                      hint="[Block(...) for _ in range(depth)] makes depth separate blocks; [Block(...)] * depth "
                           "repeats one")
    checks.check_parameters(mine, theirs, name="ViT(img_size=16, patch_size=4, embed_dim=32, depth=3, mlp_ratio=2.0)",
                            hint="pos_embed has N + 1 rows (the class token gets a position too); pass mlp_ratio "
                                 "to every Block")
    for name in ("cls_token", "pos_embed"):
        std = float(getattr(mine, name).detach().std())
        checks.check_true(0.01 < std < 0.04, f"{name} starts with standard deviation {std:.3g}",
                          hint=f"initialise {name} with torch.randn(...) * 0.02: tokens that start equal to zero "
                               "give every image the same start")
    # forward_features, step by step from the reference's own parts.
    mine.load_state_dict(theirs.state_dict())
    mine.eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        patches, cls = theirs.patch_embed(x), theirs.cls_token.expand(2, -1, -1)
        tokens = torch.cat([cls, patches], dim=1) + theirs.pos_embed

        def encode(tokens, blocks=theirs.blocks, norm=True):
            for block in blocks:
                tokens = block(tokens)
            return theirs.norm(tokens) if norm else tokens

        checks.check_close(mine.forward_features(x), theirs.forward_features(x), name="forward_features",
                           mistakes={"forward_features without the final norm": encode(tokens, norm=False),
                                     "running only the first block": encode(tokens, theirs.blocks[:1]),
                                     "calling the blocks without keeping their output (x = block(x))":
                                         encode(tokens, []),
                                     "placing the class token after the patches":
                                         encode(torch.cat([patches, cls], dim=1) + theirs.pos_embed)},
                           hint="patch_embed, the class token first, + pos_embed, every block in turn "
                                "(x = block(x)), then the final norm")
        # Faint tokens through blocks that add nothing: the final norm's eps shows.
        faint = randomised(ref.ViT(**cfg), seed=1)
        for block in faint.blocks:
            for layer in (block.attn.proj, block.mlp.fc2):
                layer.weight.zero_(), layer.bias.zero_()
        for p in (faint.patch_embed.proj.weight, faint.patch_embed.proj.bias, faint.cls_token, faint.pos_embed):
            p.mul_(1e-3)
        mine.load_state_dict(faint.state_dict())
        unchanged = torch.cat([faint.cls_token.expand(2, -1, -1), faint.patch_embed(x)], dim=1) + faint.pos_embed
        checks.check_close(mine.forward_features(x), faint.forward_features(x), name="forward_features on faint tokens",
                           mistakes={"a final LayerNorm with PyTorch's default eps=1e-5 instead of 1e-6":
                                     F.layer_norm(unchanged, (32,), faint.norm.weight, faint.norm.bias, 1e-5)},
                           hint="self.norm = nn.LayerNorm(embed_dim, eps=1e-6)")
        # The head reads the class token.
        mine.load_state_dict(theirs.state_dict())
        features = theirs.forward_features(x)
        checks.check_close(mine(x), theirs(x), name="logits",
                           mistakes={"the mean of all tokens": theirs.head(features.mean(dim=1)),
                                     "the mean of the patch tokens": theirs.head(features[:, 1:].mean(dim=1)),
                                     "the last token": theirs.head(features[:, -1])},
                           hint="forward: self.head(self.forward_features(x)[:, 0]), the class token's output")
    mine.train()
    mine.zero_grad()
    mine(x).sum().backward()
    checks.check_grad_flows(mine, hint="use the parameters themselves in forward (no .data, .detach() or copies)")
    checks.check_dtype(ViT(embed_dim=16, depth=1, num_heads=2).double()(torch.rand(2, 1, 16, 16, dtype=torch.float64)),
                       torch.float64, name="a float64 ViT on float64 images", hint="create no float32 tensor in forward")
    checks.check_on_meta(lambda: ViT(embed_dim=16, depth=2, num_heads=2).to("meta")(torch.empty(2, 1, 16, 16, device="meta")),
                         name="ViT", shape=(2, 10), hint="create no tensor on a fixed device in forward: expand "
                                                         "cls_token to the batch instead of adding it to torch.zeros(...)")


checks.run(check_vit, "Exercise 4 (ViT)", after=[check_attention, check_mhsa, check_block])
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 3)
draw = lambda low, high: int(torch.randint(low, high, (1,), generator=g))
torch.manual_seed(env.grading_seed())
mine = ViT(img_size=16, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=1, num_heads=4)
for name in ("cls_token", "pos_embed"):
    std = float(getattr(mine, name).detach().std())
    checks.check_true(0.01 < std < 0.04, f"{name} should be initialised with torch.randn(...) * 0.02, "
                      f"its values have std {std:.3g}")
P = draw(2, 5)
configs = [dict(img_size=24, patch_size=6, in_chans=3, num_classes=7, embed_dim=24, depth=3, num_heads=3, mlp_ratio=2.0),
           dict(img_size=P * draw(2, 5), patch_size=P, in_chans=2, num_classes=draw(2, 12), embed_dim=8 * draw(2, 5),
                depth=2, num_heads=2, mlp_ratio=3.0)]
for k, cfg in enumerate(configs + [configs[0]]):
    theirs = ref.ViT(**cfg)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
        if k == 2:   # faint tokens through blocks that add nothing: the final norm's eps matters
            for block in theirs.blocks:
                for layer in (block.attn.proj, block.mlp.fc2):
                    layer.weight.zero_(); layer.bias.zero_()
            for p in (theirs.patch_embed.proj.weight, theirs.patch_embed.proj.bias, theirs.cls_token, theirs.pos_embed):
                p.mul_(1e-3)
    mine = ViT(**cfg)
    checks.check_true(isinstance(mine.blocks, nn.Module) and len(mine.blocks) == cfg["depth"],
                      f"blocks should be an nn.ModuleList of depth={cfg['depth']} blocks (a Python list hides "
                      "the blocks' parameters from the optimizer and the state dict)")
    checks.check_equal(len(list(mine.parameters())), len(list(theirs.parameters())),
                       name=f"number of parameter tensors of ViT({cfg})",
                       hint="depth separate Block objects (not one block repeated), cls_token, pos_embed, norm, head")
    mine.load_state_dict(theirs.state_dict())
    mine.train()
    x = torch.randn(draw(1, 4), cfg["in_chans"], cfg["img_size"], cfg["img_size"], generator=g)
    checks.check_close(mine.forward_features(x), theirs.forward_features(x), atol=1e-4,
                       name=f"forward_features of ViT({cfg})" + (" on faint tokens" if k == 2 else ""),
                       hint="forward_features: patches, class token, positions, blocks, then the final norm (eps=1e-6)")
    logits = mine(x)
    checks.check_close(logits, theirs(x), atol=1e-4, name=f"logits of ViT({cfg})",
                       hint="the head reads the class token of forward_features")
    if k < 2:   # (in the faint case the blocks are switched off: the class token sees no patch)
        mine.zero_grad()
        (logits * torch.randn(logits.shape, generator=g)).sum().backward()
        checks.check_grad_flows(mine)
checks.check_true(ViT(embed_dim=16, depth=1, num_heads=2).double()(torch.rand(2, 1, 16, 16, dtype=torch.float64)).dtype
                  == torch.float64, "a float64 ViT on float64 images should return float64 logits")
_ = checks.check_on_meta(lambda: ViT(embed_dim=16, depth=2, num_heads=2).to("meta")(torch.empty(2, 1, 16, 16, device="meta")),
                         name="ViT", shape=(2, 10), hint="create no tensor on a fixed device in forward: expand "
                                                         "cls_token to the batch instead of adding it to torch.zeros(...)")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Can it learn? Overfit one batch
#
# Before a long training run, check that the model can memorise a handful of examples. If the loss
# does not fall to near zero on 32 images, something is broken (a detached tensor, a wrong axis, a
# learning rate far off), and no amount of data will fix it.
#
# ### Exercise 5 — `train_step` (2 points)
#
# Write one step of training on a batch of `images` and `labels`: put the model in training mode,
# compute the cross-entropy of its logits against the labels, clear the gradients the previous step
# left in the parameters, backpropagate, and let the optimizer update the weights. Return the loss as a
# Python float (the value before the update). The check compares two of your steps with reference
# steps, then uses your step and your `ViT` to memorise 32 digits in 150 steps.

# %% nbgrader={"grade": false, "grade_id": "train_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_step(model, images, labels, optimizer):
    """One optimisation step on a batch; returns the loss (a float) computed before the update."""
    ### BEGIN SOLUTION
    model.train()
    loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_train_step", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def check_train_step():
    torch.manual_seed(0)
    images, labels = torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    mine, theirs = (nn.Sequential(nn.Flatten(), nn.Linear(16, 3)) for _ in range(2))
    theirs.load_state_dict(mine.state_dict())
    mine.eval()
    opt_mine, opt_theirs = (torch.optim.SGD(m.parameters(), lr=0.5) for m in (mine, theirs))
    for step in (1, 2):
        before = mine[1].weight.detach().clone()
        loss = train_step(mine, images, labels, opt_mine)
        logits = theirs(images)
        expected = F.cross_entropy(logits, labels)
        opt_theirs.zero_grad()
        expected.backward()
        opt_theirs.step()
        checks.check_true(mine.training, "after train_step the model is still in eval mode",
                          hint="model.train() first: dropout and batch norm behave differently while training")
        checks.check_true(isinstance(loss, float), f"train_step returned a {type(loss).__name__}, not a Python float",
                          hint="return loss.item(): a float, detached from the graph")
        checks.check_close(torch.tensor(loss), expected.detach(), name=f"the loss returned by step {step}",
                           mistakes={"the cross-entropy of the softmax probabilities (F.cross_entropy takes logits "
                                     "and applies its own softmax)": F.cross_entropy(logits.detach().softmax(-1), labels)},
                           hint="F.cross_entropy(model(images), labels), computed before the update")
        checks.check_close(mine[1].weight, theirs[1].weight, name=f"the weights after step {step}",
                           inputs={"the weights before the step": before},
                           hint="optimizer.zero_grad(), loss.backward(), optimizer.step(), in this order" if step == 1
                           else "step 1 was right, step 2 is not: the gradients of step 1 were still in the "
                                "parameters. Clear them with optimizer.zero_grad() before loss.backward()")


def check_overfit():
    digits_train = data.digits(16, "train")
    images, labels = digits_train.tensors[0][:32], digits_train.tensors[1][:32]
    torch.manual_seed(env.grading_seed())
    model = ViT(img_size=16, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=2, num_heads=4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = [train_step(model, images, labels, opt) for _ in range(150)]
    print(f"loss on 32 images: {losses[0]:.3f} at the first step, {losses[-1]:.4f} after 150 steps")
    checks.check_true(losses[-1] < 0.05, f"the ViT should memorise 32 images (loss < 0.05), its loss is {losses[-1]:.3f}",
                      hint="the learning rate and the model are those of the check: look for a gradient cut "
                           "(.item(), .detach(), .data) or a part of the model that never runs")
    with torch.no_grad():
        model(images[:2])
    for i, block in enumerate(model.blocks):
        checks.check_shape(block.attn.last_attn, (2, 4, 17, 17), name=f"the attention map stored by block {i}",
                           hint="every block runs in forward_features, and Attention stores its weights in last_attn")


checks.run(check_train_step, "Exercise 5 (train_step)",
           hint="keep the loss a tensor until loss.backward(); return loss.item() at the end")
checks.run(check_overfit, "Exercise 5 (memorising 32 digits)",
           after=[check_attention, check_mhsa, check_block, check_vit, check_train_step])
### BEGIN HIDDEN TESTS
import copy
g = torch.Generator().manual_seed(env.grading_seed() + 4)
for make_optimizer in (lambda ps: torch.optim.AdamW(ps, lr=1e-2), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)):
    D, K, B = (int(v) for v in torch.randint(3, 9, (3,), generator=g))
    mine = nn.Sequential(nn.Linear(D, 8), nn.GELU(), nn.Linear(8, K))
    theirs = copy.deepcopy(mine)
    opt_mine, opt_theirs = make_optimizer(mine.parameters()), make_optimizer(theirs.parameters())
    for p, q in zip(mine.parameters(), theirs.parameters()):   # gradients left over from earlier work
        p.grad = torch.randn(p.shape, generator=g)
        q.grad = p.grad.clone()
    x, y = torch.randn(B, D, generator=g), torch.randint(0, K, (B,), generator=g)
    for step in range(3):
        loss = train_step(mine, x, y, opt_mine)
        opt_theirs.zero_grad()
        expected = F.cross_entropy(theirs(x), y)
        expected.backward()
        opt_theirs.step()
        checks.check_true(isinstance(loss, float) and abs(loss - expected.item()) < 1e-5,
                          f"train_step returned {loss!r} at step {step}, the loss was {expected.item():.6f}")
        for p, q in zip(mine.parameters(), theirs.parameters()):
            checks.check_close(p, q, atol=1e-6, name=f"the weights after step {step} with {type(opt_mine).__name__}")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 — what the overfit test shows
#
# *Written answer, 2 points, scored by your instructor.*
#
# Your ViT memorised 32 digits. Name one mistake of this chapter (in `attention`, `Attention`, `Block`,
# `ViT` or `train_step`) that this test would catch, and one that it would let through, and say why in
# each case. What does a loss near zero on one batch tell you about the model's accuracy on new images?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_overfit", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# *Caught:* a `forward_features` that calls the blocks without keeping their output. The class token
# then never mixes with the patches: every image gives the head the same vector, the loss stays near
# $\ln 10 \approx 2.3$, and the test fails. (Also: `optimizer.step()` before `loss.backward()`, or a
# gradient cut with `.item()`: nothing is learned.)
#
# *Let through:* LayerNorm with `eps=1e-5`, the tanh GELU, mean pooling instead of the class token, or
# scores divided by $d$ instead of $\sqrt{d}$. Each changes the function the model computes, not its
# ability to fit: the model still has far more parameters than 32 images need and gradients still
# reach them, so it memorises the batch anyway. Only a comparison with the reference shows such
# mistakes.
#
# A loss near zero on one batch says nothing about new images: it shows that the wiring learns, not
# that it generalises. That is measured on held-out data (the next section).
#
# **Rubric (2 points).** 1 point: a mistake the test catches, with a reason that says why nothing can be
# learned (no information reaches the head, no update, a cut gradient). 1 point: a mistake it lets
# through, with the reason that the model can still fit the batch, and the statement that memorising a
# batch says nothing about accuracy on new images.
# ### END SOLUTION

# %% [markdown]
# ## 6. Training on the digits
#
# Now a real run: the bundled handwritten digits, upsampled to 16 × 16, cut into 4 × 4 patches (16
# tokens plus the class token). Each training image is shifted by up to one pixel at random
# (`shift=1`), the one augmentation that makes the result reliable on so few images. With the `tiny`
# budget this takes well under a minute on a CPU; the reading page gives the accuracy of the `full`
# budget's 60 epochs over five seeds. The reference ViT trains the same way; we use yours.

# %% tags=["demo"]
torch.manual_seed(0)
train_loader, test_loader = data.digits_loaders(batch_size=64, img_size=16, shift=1)
model = ViT(**DIGITS_VIT)  # img_size=16, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4, num_heads=4
epochs = 15 if BUDGET == "tiny" else 60
start = time.perf_counter()
history = train.fit(model, train_loader, epochs=epochs, lr=3e-3, weight_decay=0.05, warmup_steps=100,
                    eval_loader=test_loader, device=DEVICE)
print(f"test accuracy {history.test_acc[-1]:.3f} after {epochs} epochs ({time.perf_counter() - start:.0f} s)")
history.plot("ViT on the digits");

# %% [markdown]
# What does the class token look at? The last block's attention from the class token to the 16 patches,
# averaged over heads, for a few test digits:

# %% tags=["demo"]
test_images, test_labels = data.digits(16, "test").tensors
model.eval()
cls_attn = analysis.cls_attention(model, test_images[:3].to(DEVICE)).mean(dim=1).cpu()   # (3, 4, 4): last block, mean of heads
for image, label, attn in zip(test_images[:3], test_labels[:3].tolist(), cls_attn):
    viz.show_attention(image, attn, titles=[f"a {label}: class-token attention"], size=2.2)

# %% [markdown]
# ## 7. Real data and a real checkpoint
#
# On Colab (or wherever the network is reachable) the next cell loads the official DINO ViT-S/16 from
# timm into the course's reference `ViT` with `vitcourse.convert.from_timm` and shows its class-token
# attention on the cat: self-supervised training alone makes it outline the animal. Offline it says so
# and the digits model's maps above stand in for it.

# %% tags=["demo"]
from vitcourse.convert import from_timm
if ("google.colab" in sys.modules or BUDGET == "full") and env.online():
    import timm
    try:
        dino = from_timm(timm.create_model("vit_small_patch16_224.dino", pretrained=True)).eval().to(DEVICE)
        photo = data.photo("chelsea", 224)
        mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
        viz.show_attention(photo, analysis.cls_attention(dino, ((photo - mean) / std)[None].to(DEVICE))[0].cpu())
    except Exception as exc:
        print(f"The DINO checkpoint could not be loaded ({type(exc).__name__}); the digits maps above stand in for it.")
else:
    print("The pretrained DINO ViT-S/16 attention maps are shown on Colab or in the full budget, with internet access.")

# %% [markdown]
# With a GPU (`full` budget) the same architecture, wider and deeper, trains on CIFAR-10 with random
# crops and flips. Its running time is not measured here; its cost can be counted: the model (3.6 M
# parameters, 65 tokens) needs 0.24 GMACs per 32 px image forward (`flops.measured_macs`), so 30 epochs
# of 50,000 images at about three times the forward cost for forward plus backward come to 1.1e15 MACs
# (2.2e15 FLOPs). How many minutes that takes depends on the GPU and on data loading: the cell prints
# the test accuracy, and the progress bar shows how fast the steps run on your GPU.

# %% tags=["demo"]
if BUDGET == "full":
    import torchvision.transforms.v2 as T
    to_tensor = [T.ToImage(), T.ToDtype(torch.float32, scale=True)]
    cifar = data.cifar10(train=True, transform=T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), *to_tensor]))
    cifar_test = data.cifar10(train=False, transform=T.Compose(to_tensor))
    big = ViT(img_size=32, patch_size=4, in_chans=3, num_classes=10, embed_dim=192, depth=8, num_heads=6)
    hist = train.fit(big, torch.utils.data.DataLoader(cifar, batch_size=256, shuffle=True, num_workers=2), epochs=30,
                     lr=1e-3, warmup_steps=500, eval_loader=torch.utils.data.DataLoader(cifar_test, batch_size=512), device=DEVICE)
    print(f"CIFAR-10 test accuracy: {hist.test_acc[-1]:.3f}")
    hist.plot("ViT on CIFAR-10")
else:
    print("tiny budget: the CIFAR-10 run needs a GPU (BUDGET == 'full').")

# %% [markdown]
# ## Takeaways
#
# - Attention is a softmax over keys of scaled dot products; heads split the width, one projection
#   computes $q, k, v$, another mixes the heads.
# - A ViT block is pre-norm: $x + \mathrm{MHSA}(\mathrm{LN}(x))$, then $x + \mathrm{MLP}(\mathrm{LN}(x))$.
# - Equivalence with published implementations hinges on small details: the `(B, N, 3, heads, head_dim)`
#   layout of `qkv`, LayerNorm `eps=1e-6`, exact GELU.
# - A boolean mask keeps chosen keys out of reach: their scores become $-\infty$ before the softmax.
# - Overfitting a single batch is the cheapest test that a model can learn at all; it says nothing about
#   accuracy on new images.
#
# ## Go further (not graded): how small can the patches be?
#
# Train `ViT(**DIGITS_VIT)` on the digits with `patch_size=4` (16 patch tokens) and with `patch_size=2`
# (64 tokens; keep everything else), for three seeds each, with the training cell of section 6. Record
# the test accuracy, the seconds per epoch, and the multiply-adds of one forward pass
# (`vitcourse.flops.measured_macs(model, (1, 1, 16, 16))`). What to look for: how the cost
# grows with the number of tokens (which parts grow like $N$, which like $N^2$?), and whether four times
# as many tokens buy accuracy on 16-pixel images. It worked if you can say, with numbers, whether the
# gain (or loss) in accuracy is larger than the spread between seeds, and which layers the extra time
# goes to. A difference smaller than that spread is noise, not a result.
