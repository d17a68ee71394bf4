# %% [markdown]
# # Chapter 8 — Registers: where artifact tokens come from
#
# Self-attention lets every token read every other, but a ViT's sequence has no slot whose job is to
# *keep* what a layer has gathered about the whole image: the class token is pulled by the loss, each
# patch token stands for its own square of pixels. Large ViTs trained for long find a slot anyway. They
# pick patches that add nothing their neighbours do not already say (a stretch of sky, a blank wall) and
# reuse them as scratch space. Those tokens give themselves away by their size: their feature norms sit
# far above everyone else's, and the class token attends to them, which puts bright specks on the
# background of attention maps (Darcet et al., ICLR 2024, "Vision Transformers Need Registers").
#
# The remedy is to give the model the scratch space it was improvising: a few learned **registers**,
# tokens that stand for no patch, that every block reads and writes, and that nothing at the output
# uses. You will build them into a ViT exactly as timm stores DINOv2's checkpoints, then learn to
# spot an outlier token without a hand-picked threshold.
#
# **You will**
#
# 1. place register tokens between `[CLS]` and the patches, with position embeddings in both layouts
#    (`add_prefix_tokens`, chapter 4's function with registers);
# 2. keep the registers away from everything a head sees (`split_tokens`, `pool`);
# 3. assemble a ViT with registers that loads timm's `vit_small_patch14_reg4_dinov2` weights (`RegisterViT`);
# 4. flag high-norm tokens with a threshold that adapts to any model (`find_artifact_tokens`);
# 5. measure where the class token looks (`attention_shares`) in a small experiment with and without
#    registers, after predicting what it will show.

# %% [markdown]
# This notebook is the exercise of [Chapter 8 — Registers: where artifact tokens come from](https://vit-from-scratch.github.io/vit-course/book/08-registers.html)
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
# **Time and points.** Top to bottom, the notebook runs in about 20 seconds on a two-core CPU
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
from vitcourse.models.patches import PatchEmbed, num_tokens
from vitcourse.models.vit import Block

DEVICE, BUDGET = env.device(), env.budget()
print(env.describe())


# %% [markdown]
# ## 1. Where the registers go
#
# A ViT with $R$ registers reads
#
# $$[\,\texttt{cls},\ r_1, \dots, r_R,\ x_1 + e_1, \dots, x_N + e_N\,]$$
#
# The order is fixed by convention (timm, DINOv2): class token, then registers, then patches. Registers
# are learned vectors, the same for every image, like the class token.
#
# Position embeddings: DINOv2's own code has a `pos_embed` of $1 + N$ rows, adds it to the class token and
# the patches, and only then inserts the registers, which therefore get no position. timm stores the
# DINOv2 checkpoints with registers in an equivalent layout, `no_embed_class=True`: when it converts
# them it adds the class token's row to the class token once, so its `pos_embed` has $N$ rows and is
# added to the patches only. You write timm's layout, so that timm's weights load directly. With
# `no_embed_class=False` (the original ViT's layout, here with registers) the prefix tokens are
# concatenated first and a `pos_embed` of $1 + R + N$ rows is added to everything.
#
# ### Exercise 1 — `add_prefix_tokens` (4 points)
#
# `add_prefix_tokens(patch_tokens, pos_embed, cls_token, reg_token, no_embed_class=True)`:
# patch tokens `(B, N, D)`, `pos_embed` of `(1, N, D)` when `no_embed_class` else `(1, 1 + R + N, D)`,
# `cls_token` `(1, 1, D)`, `reg_token` `(1, R, D)` or `None` (no registers; timm's name for the parameter
# that holds all R of them). Return `(B, 1 + R + N, D)`.
#
# The hidden checks vary the batch size, the number of registers (0 included), the number and width of
# the tokens, both layouts and the dtype, and run your function on PyTorch's `meta` device (shapes, no
# data): a tensor you create inside must live on the inputs' device (`device=patch_tokens.device`).

# %% nbgrader={"grade": false, "grade_id": "add_prefix_tokens", "locked": false, "schema_version": 3, "solution": true, "task": false}
def add_prefix_tokens(patch_tokens, pos_embed, cls_token, reg_token, no_embed_class=True):
    """(B, N, D) -> (B, 1 + R + N, D): [cls, registers, patches], position embeddings per convention."""
    ### BEGIN SOLUTION
    B = patch_tokens.shape[0]
    prefix = [cls_token.expand(B, -1, -1)]
    if reg_token is not None:
        prefix.append(reg_token.expand(B, -1, -1))
    if no_embed_class:
        return torch.cat(prefix + [patch_tokens + pos_embed], dim=1)
    return torch.cat(prefix + [patch_tokens], dim=1) + pos_embed
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_add_prefix_tokens", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def check_add_prefix_tokens():
    torch.manual_seed(0)
    B, N, D, R = 2, 5, 6, 3
    p, c, r = torch.randn(B, N, D), torch.randn(1, 1, D), torch.randn(1, R, D)
    pos = torch.randn(1, N, D)                                     # timm's DINOv2 layout: a row per patch
    out = add_prefix_tokens(p, pos, cls_token=c, reg_token=r, no_embed_class=True)
    checks.check_shape(out, (B, 1 + R + N, D), name="add_prefix_tokens with 3 registers",
                       hint="expand the class token and the registers to the batch, then concatenate along dim 1")
    checks.check_close(out[:, 0], c[:, 0].expand(B, -1), name="token 0, the class token",
                       hint="the class token comes first and, with no_embed_class=True, gets no position embedding")
    checks.check_close(out[:, 1:1 + R], r.expand(B, -1, -1), name="tokens 1 to 3, the registers",
                       mistakes={"putting the registers after the patches": (p + pos)[:, :R],
                                 "adding position embeddings to the registers": (r + pos[:, :R]).expand(B, -1, -1)},
                       hint="the registers come right after the class token and get no position embedding")
    checks.check_close(out[:, 1 + R:], p + pos, name="the patch tokens", hint="the patches come last, each plus its row "
                       "of pos_embed")
    full = torch.randn(1, 1 + R + N, D)                            # the original ViT's layout: a row per token
    out = add_prefix_tokens(p, full, cls_token=c, reg_token=r, no_embed_class=False)
    prefix = torch.cat([c.expand(B, -1, -1), r.expand(B, -1, -1)], dim=1)
    checks.check_close(out, torch.cat([prefix, p], dim=1) + full, name="add_prefix_tokens with no_embed_class=False",
                       mistakes={"adding position embeddings to the patches only": torch.cat([prefix, p + full[:, -N:]], 1)},
                       hint="with no_embed_class=False, concatenate first, then add all 1 + R + N rows of pos_embed")
    checks.check_shape(add_prefix_tokens(p, pos, cls_token=c, reg_token=None), (B, 1 + N, D),
                       name="add_prefix_tokens without registers (reg_token=None)")
    out64 = add_prefix_tokens(p.double(), pos.double(), cls_token=c.double(), reg_token=r.double())
    checks.check_dtype(out64, torch.float64, name="add_prefix_tokens of float64 tokens")
    meta = lambda *shape: torch.empty(*shape, device="meta")
    checks.check_on_meta(lambda: add_prefix_tokens(meta(B, N, D), meta(1, N, D), cls_token=meta(1, 1, D), reg_token=None),
                         name="add_prefix_tokens without registers", shape=(B, 1 + N, D),
                         hint="create no tensor on a fixed device: with reg_token=None leave the registers out "
                              "instead of making an empty tensor with torch.zeros (it lands on the CPU)")


checks.run(check_add_prefix_tokens, "Exercise 1 (add_prefix_tokens)")
### BEGIN HIDDEN TESTS
from vitcourse.models import vit as ref_vit
g = torch.Generator().manual_seed(env.grading_seed())
for R in (0, 1, 4):
    for nec in (True, False):
        B = int(torch.randint(2, 6, (1,), generator=g))
        N, D = (int(v) for v in torch.randint(1, 9, (2,), generator=g))
        dtype = torch.float64 if R == 1 else torch.float32
        p, c = torch.randn(B, N, D, generator=g, dtype=dtype), torch.randn(1, 1, D, generator=g, dtype=dtype)
        r = torch.randn(1, R, D, generator=g, dtype=dtype) if R else None
        e = torch.randn(1, N if nec else 1 + R + N, D, generator=g, dtype=dtype)
        name = f"add_prefix_tokens with B={B}, R={R}, no_embed_class={nec} ({dtype})"
        out = add_prefix_tokens(p, e, cls_token=c, reg_token=r, no_embed_class=nec)
        checks.check_equal(out.dtype, dtype, name=f"dtype of {name}")
        checks.check_close(out, ref_vit.add_prefix_tokens(p, e, cls_token=c, reg_token=r, no_embed_class=nec),
                           name=name, hint="order cls, registers, patches; each prefix token expanded over the batch")
meta = lambda *shape: torch.empty(*shape, device="meta")
for R in (0, 3):
    for nec in (True, False):
        checks.check_on_meta(
            lambda: add_prefix_tokens(meta(2, 5, 4), meta(1, 5 if nec else 1 + R + 5, 4), cls_token=meta(1, 1, 4),  # noqa: B023 - called at once
                                      reg_token=meta(1, R, 4) if R else None, no_embed_class=nec),  # noqa: B023
            name=f"add_prefix_tokens with R={R}, no_embed_class={nec}", shape=(2, 1 + R + 5, 4),
            hint="a tensor created inside the function is on the CPU: create it on the inputs' device "
                 "(device=patch_tokens.device), or leave out what is missing")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 — dropping the registers (2 points)
#
# Registers are read and written by every block but never leave the model. Write
# `split_tokens(tokens, num_registers)` → `(cls (B, D), registers (B, R, D), patches (B, N, D))`, and
# `pool(tokens, global_pool="token", num_prefix_tokens=1)` → `(B, D)` as in chapter 2: the class token for
# `global_pool="token"`, the mean of the **patch** tokens for `"avg"`, and a `ValueError` naming any other
# value. With registers the prefix is `1 + R` tokens long. No register may reach the pooled output.

# %% nbgrader={"grade": false, "grade_id": "split_pool", "locked": false, "schema_version": 3, "solution": true, "task": false}
def split_tokens(tokens, num_registers):
    """(B, 1 + R + N, D) -> (cls (B, D), registers (B, R, D), patches (B, N, D))."""
    ### BEGIN SOLUTION
    return tokens[:, 0], tokens[:, 1:1 + num_registers], tokens[:, 1 + num_registers:]
    ### END SOLUTION


def pool(tokens, global_pool="token", num_prefix_tokens=1):
    """(B, T, D) -> (B, D): the class token, or the mean over the patch tokens only."""
    ### BEGIN SOLUTION
    if global_pool == "token":
        return tokens[:, 0]
    if global_pool == "avg":
        return tokens[:, num_prefix_tokens:].mean(dim=1)
    raise ValueError(f"global_pool={global_pool!r}: use 'token' or 'avg'")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_split_pool", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def check_split_pool():
    torch.manual_seed(0)
    t = torch.randn(2, 1 + 2 + 9, 3)                               # class token, 2 registers, 9 patches
    cls, regs, patches = split_tokens(t, 2)
    checks.check_close(cls, t[:, 0], name="the class token from split_tokens(tokens, 2)",
                       hint="tokens[:, 0] is (B, D); tokens[:, :1] would keep a token dimension")
    checks.check_close(regs, t[:, 1:3], name="the registers from split_tokens(tokens, 2)",
                       hint="the registers are tokens 1 to num_registers: tokens[:, 1:1 + num_registers]")
    checks.check_close(patches, t[:, 3:], name="the patches from split_tokens(tokens, 2)",
                       hint="the patches start after the 1 + num_registers prefix tokens")
    checks.check_close(pool(t, "token", 3), t[:, 0], name="pool(tokens, 'token', 3)", hint="'token' returns the class token")
    checks.check_close(pool(t, "avg", 3), t[:, 3:].mean(1), name="pool(tokens, 'avg', num_prefix_tokens=3)",
                       mistakes={"averaging the registers with the patches": t[:, 1:].mean(1)},
                       hint="average the patch tokens only: leave out all num_prefix_tokens prefix tokens")
    checks.check_raises(lambda: pool(t, "max", 3), ValueError, name="pool(tokens, 'max')",
                        hint="raise a ValueError that names any global_pool other than 'token' and 'avg'")


checks.run(check_split_pool, "Exercise 2 (split_tokens and pool)")
### BEGIN HIDDEN TESTS
from vitcourse.models import position as ref_position, registers as ref_registers
g = torch.Generator().manual_seed(env.grading_seed() + 1)
for R in (0, 1, 2, 4):
    B, N = int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(1, 10, (1,), generator=g))
    t = torch.randn(B, 1 + R + N, 5, generator=g)
    for got, want, part in zip(split_tokens(t, R), ref_registers.split_tokens(t, R), ("class token", "registers", "patches")):
        checks.check_close(got, want, name=f"split_tokens: {part} of {tuple(t.shape)} with R={R}")
    for mode in ("token", "avg"):
        checks.check_close(pool(t, mode, 1 + R), ref_position.pool(t, mode, 1 + R), name=f"pool({mode!r}) with R={R}",
                           hint="the mean leaves out all 1 + R prefix tokens")
for fn, who in ((pool, "your pool"), (ref_position.pool, "the reference's pool")):
    checks.check_raises(lambda: fn(t, "max", 1), ValueError, name=f"{who}(tokens, 'max')",  # noqa: B023 - called at once
                        hint="raise a ValueError for a global_pool other than 'token' and 'avg'")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3 — `RegisterViT` (4 points)
#
# Complete the model. Patch embedding, blocks (with layer scale, as DINOv2), final norm and head are
# given. Create `self.cls_token` `(1, 1, D)`, `self.reg_token` `(1, R, D)` (or `None` when
# `num_registers=0`) and `self.pos_embed` (`(1, N, D)` with `no_embed_class`, else `(1, 1 + R + N, D)`),
# each initialised with `nn.init.trunc_normal_(std=0.02)`; then write `forward_features` (every token,
# after the final norm) and `forward` (your `pool` over the right number of prefix tokens, then the
# head). The parameter names are timm's, so timm's weights load into your model as they are. (With
# `global_pool="avg"` timm normalises after pooling; this model keeps the one norm before pooling in
# both modes, so only `"token"` pooling is compared with timm.)
#
# Two properties come with the registers. They cost what a patch token costs: DINOv2 ViT-S/14 at
# 224 px reads 261 tokens with 4 registers instead of 257, 1.6% more, in every block. And they are
# trained like any parameter, through attention: the other tokens read them, so the loss reaches them.
# That only helps if they start out different: registers initialised to the same vector receive the
# same gradient at every step and stay copies of each other for ever. The check tests both, compares
# your model with timm's after loading its weights, and runs it on the `meta` device.

# %% nbgrader={"grade": false, "grade_id": "register_vit", "locked": false, "schema_version": 3, "solution": true, "task": false}
class RegisterViT(nn.Module):
    """ViT with R register tokens (DINOv2 style). (B, C, H, W) -> logits (B, K)."""

    def __init__(self, img_size=224, patch_size=14, in_chans=3, num_classes=1000, embed_dim=384, depth=12,
                 num_heads=6, num_registers=4, no_embed_class=True, global_pool="token", init_values=1e-5):
        super().__init__()
        self.num_registers, self.no_embed_class, self.global_pool = num_registers, no_embed_class, global_pool
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = (img_size // patch_size) ** 2
        ### BEGIN SOLUTION
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.reg_token = nn.Parameter(torch.zeros(1, num_registers, embed_dim)) if num_registers else None
        rows = num_patches if no_embed_class else 1 + num_registers + num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, rows, embed_dim))
        for p in (self.cls_token, self.reg_token, self.pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        ### END SOLUTION
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, 4.0, qkv_bias=True, init_values=init_values)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward_features(self, x):
        ### BEGIN SOLUTION
        x = add_prefix_tokens(self.patch_embed(x), self.pos_embed, self.cls_token, self.reg_token,
                              self.no_embed_class)
        return self.norm(self.blocks(x))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.head(pool(self.forward_features(x), self.global_pool, 1 + self.num_registers))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_register_vit", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
import timm
from timm.models.vision_transformer import VisionTransformer


def check_register_vit():
    config = dict(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=2, num_heads=2)
    for R, nec in ((3, True), (2, False), (0, True)):
        mine = RegisterViT(**config, num_registers=R, no_embed_class=nec)
        name = f"RegisterViT(num_registers={R}, no_embed_class={nec})"
        if R:
            checks.check_shape(mine.reg_token, (1, R, 16), name=f"reg_token of {name}",
                               hint="one (1, R, D) parameter holds all R registers: use num_registers, not a fixed count")
        else:
            checks.check_true(mine.reg_token is None, f"reg_token of {name} should be None",
                              hint="without registers set self.reg_token = None (timm loads its checkpoints that way)")
        checks.check_shape(mine.pos_embed, (1, 16 if nec else 1 + R + 16, 16), name=f"pos_embed of {name}",
                           hint="N rows with no_embed_class=True, else 1 + R + N")
    torch.manual_seed(0)
    wide = RegisterViT(img_size=28, patch_size=14, num_classes=2, embed_dim=384, depth=1, num_heads=6, num_registers=4)
    for pname in ("cls_token", "reg_token", "pos_embed"):
        std = float(getattr(wide, pname).detach().std())
        checks.check_true(0.015 < std < 0.025, f"{pname} starts with standard deviation {std:.3g}, not about 0.02",
                          hint="nn.init.trunc_normal_(parameter, std=0.02) for cls_token, reg_token and pos_embed")
    regs = wide.reg_token.detach()[0]
    gaps = (regs[:, None] - regs[None]).norm(dim=-1) + torch.eye(4) * 1e9
    checks.check_true(float(gaps.min()) > 1e-3, "two registers start out equal: they get equal gradients and never differ",
                      hint="initialise the whole (1, R, D) reg_token at random, not one register copied R times")
    theirs = VisionTransformer(**config, reg_tokens=3, no_embed_class=True, init_values=1e-5).eval()  # timm's name
    with torch.no_grad():
        for param in theirs.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    mine = RegisterViT(**config, num_registers=3).eval()
    mine.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        norm, theirs.norm = theirs.norm, nn.Identity()
        before_norm = theirs.forward_features(x)
        theirs.norm = norm
        features = mine.forward_features(x)
        checks.check_close(features, theirs.forward_features(x), atol=1e-4,
                           name="forward_features against timm's ViT with 3 registers (its weights loaded)",
                           mistakes={"leaving the final norm out of forward_features": before_norm},
                           hint="forward_features: add_prefix_tokens(patch_embed(x), ...), the blocks, then the final norm")
        checks.check_equal(features.shape[1], num_tokens(16, 16, 4, num_registers=3), name="tokens leaving the blocks",
                           hint="1 class token + R registers + N patches")
        checks.check_close(mine(x), theirs(x), atol=1e-4, name="logits against timm's ViT with 3 registers",
                           hint="forward: pool the class token of forward_features, then the head")
        mine.global_pool = "avg"
        checks.check_close(mine(x), mine.head(features[:, 4:].mean(1)), atol=1e-5,
                           name="logits with global_pool='avg'",
                           mistakes={"pooling over the registers as well": mine.head(features[:, 1:].mean(1))},
                           hint="pool with num_prefix_tokens = 1 + num_registers")
    torch.manual_seed(0)
    model = RegisterViT(**config, num_registers=4)
    model(torch.randn(4, 1, 16, 16)).sum().backward()
    checks.check_grad_flows(model.reg_token, name="reg_token",
                            hint="the registers must be part of the sequence the blocks read")
    meta_model = RegisterViT(**config, num_registers=0).to("meta")
    checks.check_on_meta(lambda: meta_model(torch.empty(2, 1, 16, 16, device="meta")),
                         name="RegisterViT without registers", shape=(2, 3),
                         hint="create no tensor on a fixed device in forward: leave the missing registers out")


checks.run(check_register_vit, "Exercise 3 (RegisterViT)", after=[check_add_prefix_tokens, check_split_pool])
### BEGIN HIDDEN TESTS
torch.manual_seed(env.grading_seed())
ref_model = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, img_size=224, num_classes=10).eval()
with torch.no_grad():
    for p in ref_model.parameters():
        p.add_(torch.randn_like(p) * 0.02)
mine = RegisterViT(img_size=224, patch_size=14, num_classes=10).eval()
mine.load_state_dict(ref_model.state_dict())
x = torch.randn(1, 3, 224, 224)
with torch.no_grad():
    checks.check_close(mine.forward_features(x), ref_model.forward_features(x), atol=1e-4,
                       name="forward_features against timm vit_small_patch14_reg4_dinov2 at 224")
    checks.check_close(mine(x), ref_model(x), atol=1e-5, name="logits against timm vit_small_patch14_reg4_dinov2")
for nec in (False, True):
    ref_small = timm.models.vision_transformer.VisionTransformer(
        img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=2, num_heads=2, reg_tokens=2,  # timm's name
        no_embed_class=nec, init_values=1e-5).eval()
    mine_small = RegisterViT(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=2, num_heads=2,
                             num_registers=2, no_embed_class=nec).eval()
    with torch.no_grad():
        for p in ref_small.parameters():
            p.add_(torch.randn_like(p))
    mine_small.load_state_dict(ref_small.state_dict())
    xs = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        checks.check_close(mine_small(xs), ref_small(xs), atol=1e-5,
                           name=f"logits against timm with 2 registers, no_embed_class={nec}",
                           hint="order cls, registers, patches; position embeddings per no_embed_class")
g = torch.Generator().manual_seed(env.grading_seed() + 5)
for R, nec, img, patch, chans in [(0, True, 16, 4, 1), (0, False, 12, 3, 3), (1, False, 16, 4, 1), (1, True, 18, 6, 2),
                                  (4, False, 12, 4, 3)]:
    config = dict(img_size=img, patch_size=patch, in_chans=chans, num_classes=3, embed_dim=16, depth=2, num_heads=2)
    ref_small = timm.models.vision_transformer.VisionTransformer(**config, reg_tokens=R, no_embed_class=nec,
                                                                 init_values=1e-5).eval()
    mine_small = RegisterViT(**config, num_registers=R, no_embed_class=nec).eval()
    name = f"RegisterViT with {R} registers, no_embed_class={nec}, {img} px, patch {patch}, {chans} channels"
    checks.check_equal(sum(p.numel() for p in mine_small.parameters()), sum(p.numel() for p in ref_small.parameters()),
                       name=f"number of parameters of {name}", hint="reg_token is None without registers; "
                       "pos_embed has N rows with no_embed_class, else 1 + R + N")
    with torch.no_grad():
        for p in ref_small.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)
    mine_small.load_state_dict(ref_small.state_dict())
    xs = torch.randn(2, chans, img, img, generator=g)
    with torch.no_grad():
        checks.check_close(mine_small.forward_features(xs), ref_small.forward_features(xs), atol=1e-4,
                           name=f"forward_features of {name}", hint="forward_features ends with the final norm")
        checks.check_close(mine_small(xs), ref_small(xs), atol=1e-4, name=f"logits of {name}")
torch.manual_seed(env.grading_seed())
wide = RegisterViT(img_size=28, patch_size=14, num_classes=2, embed_dim=384, depth=1, num_heads=6, num_registers=4)
for pname in ("cls_token", "reg_token", "pos_embed"):
    std = float(getattr(wide, pname).detach().std())
    checks.check_true(0.015 < std < 0.025, f"{pname} is initialised with standard deviation {std:.3g}, not about 0.02",
                      hint="nn.init.trunc_normal_(parameter, std=0.02) for cls_token, reg_token and pos_embed")
regs = wide.reg_token.detach()[0]
gaps = (regs[:, None] - regs[None]).norm(dim=-1) + torch.eye(4) * 1e9
checks.check_true(float(gaps.min()) > 1e-3, "two registers start out equal: they will get equal gradients and never differ",
                  hint="initialise the whole (1, R, D) reg_token at random, not one register copied R times")
for R in (0, 2):
    meta_model = RegisterViT(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=1, num_heads=2,
                             num_registers=R).to("meta")
    out = checks.check_on_meta(lambda: meta_model(torch.empty(2, 1, 16, 16, device="meta")),  # noqa: B023 - called at once
                               name=f"RegisterViT with {R} registers",
                               hint="a tensor created inside forward is on the CPU: create it on the input's device, or leave it out")
    checks.check_shape(out, (2, 3), name=f"logits on the meta device, {R} registers")
for R, nec, img, patch in [(2, False, 24, 6), (3, True, 20, 5), (0, False, 16, 8)]:
    m = RegisterViT(img_size=img, patch_size=patch, in_chans=1, num_classes=2, embed_dim=8, depth=1, num_heads=2,
                    num_registers=R, no_embed_class=nec)
    checks.check_shape(m.forward_features(torch.randn(3, 1, img, img, generator=g)),
                       (3, num_tokens(img, img, patch, num_registers=R), 8),
                       name=f"forward_features with {R} registers, no_embed_class={nec}, {img} px, patch {patch}")
torch.manual_seed(env.grading_seed())
m = RegisterViT(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=2, num_heads=2, num_registers=4)
m(torch.randn(4, 1, 16, 16, generator=g)).sum().backward()
grads = m.reg_token.grad[0]
gaps = (grads[:, None] - grads[None]).norm(dim=-1) / grads.norm(dim=-1).max() + torch.eye(4)
checks.check_true(float(gaps.min()) > 1e-4, "two registers received the same gradient: they can never become different",
                  hint="registers that start equal stay equal; initialise reg_token at random (trunc_normal_, std 0.02)")
m.eval()
x = torch.randn(3, 1, 16, 16, generator=g)
with torch.no_grad():
    feats = m.forward_features(x)
    changed = feats.clone()
    changed[:, 1:5] += 50.0
    for mode in ("token", "avg"):
        checks.check_close(pool(changed, mode, 5), pool(feats, mode, 5), name=f"pool({mode!r}) with changed registers",
                           hint="registers must not reach the pooled output")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 1 — two layouts, one model
#
# *Written answer, 2 points, scored by your instructor.*
#
# DINOv2's own code adds a position row to the class token and gives the registers none; timm stores the
# same checkpoints with `no_embed_class=True`, where `pos_embed` has no row for the class token at all,
# and the two produce identical outputs. In three or four sentences: why can the class token's position
# row be folded into the class token itself without changing any output, and why could the same not be
# done for the row of a patch? (Think about what each token is before the first block, for any image.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_layouts", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# **Model answer.** Before the first block the class token is the same learned vector for every image,
# and so is its position row; their sum is one constant vector, so storing `cls_token + pos_embed[:, 0]`
# as the class token (and dropping that row) feeds the blocks exactly the same input. A patch token is
# different for every image: its content comes from the pixels, and only the position row is constant.
# The row cannot be folded into anything learned that is shared across images except by keeping it as a
# separate term added to the patch's content, which is what `pos_embed` is. (The registers need no
# folding: they never had a position row.)
#
# **Rubric (2 points).** 1 point: the class token (and its position row) is the same for every image, so
# their sum is a single constant the checkpoint can store. 1 point: a patch token depends on the image, so
# its position must still be added to the image-dependent content (it cannot be precomputed into a
# parameter). No point for restating that the outputs are identical without a reason.
# ### END SOLUTION

# %% [markdown]
# ## 2. Finding artifact tokens
#
# An artifact is a patch token whose norm is an outlier. How far out? The paper's figures put DINOv2 ViT-g's
# outliers above a norm of about 150 when typical tokens sit well below 100; a fixed number like that only
# fits one model. We want a rule that adapts to any model and is not fooled by the outliers themselves.
#
# The mean and standard deviation are pulled up by the very outliers we hunt. The **median** $m$ and the
# **median absolute deviation** $\mathrm{MAD} = \mathrm{median}(|n_i - m|)$ are not: a few extreme values
# barely move them. For Gaussian data $1.4826 \cdot \mathrm{MAD}$ estimates the standard deviation, so
#
# $$\text{threshold} = m + k \cdot 1.4826 \cdot \mathrm{MAD}, \qquad k = 6,$$
#
# is "six robust standard deviations above the median". Why 6: for clean Gaussian features (dimension 2 to
# 384, up to 100,000 tokens) the largest norm lies 4 to 6 robust standard deviations above the median, so
# $k = 6$ flags nothing there, while tokens with a few times the typical norm are far above it.
#
# ### Exercise 4 — `find_artifact_tokens` (4 points)
#
# `find_artifact_tokens(features, threshold=None)`: `features` are patch tokens `(B, N, D)` or their norms
# `(B, N)`. Return a bool mask `(B, N)`, True where the token's L2 norm is above `threshold`; with
# `threshold=None`, use the rule above with the median and MAD of **all** the norms given (the whole batch,
# one cut-off for the model). Use `torch.median` (for an even count it returns the lower middle value).
# `k` is the number of robust standard deviations; the hidden checks vary it.

# %% nbgrader={"grade": false, "grade_id": "find_artifact_tokens", "locked": false, "schema_version": 3, "solution": true, "task": false}
def find_artifact_tokens(features, threshold=None, k=6.0):
    """Bool mask (B, N) of tokens whose norm exceeds threshold (default: median + k * 1.4826 * MAD)."""
    ### BEGIN SOLUTION
    norms = features.norm(dim=-1) if features.ndim == 3 else features
    if threshold is None:
        med = norms.flatten().median()
        mad = (norms.flatten() - med).abs().median()
        threshold = med + k * 1.4826 * mad
    return norms > threshold
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_find_artifact_tokens", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def robust_sd(norms):
    """The median of the norms and 1.4826 * MAD, for placing test tokens at chosen distances."""
    med = norms.flatten().median()
    return med, 1.4826 * (norms.flatten() - med).abs().median()


def check_find_artifact_tokens():
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(8, 64, 32, generator=g)
    mask = find_artifact_tokens(clean)
    checks.check_shape(mask, (8, 64), name="the mask of (8, 64, 32) features", hint="one flag per token: the norm over D")
    checks.check_dtype(mask, torch.bool, name="the mask", hint="a comparison (norms > threshold) gives bools")
    checks.check_equal(int(mask.sum()), 0, name="tokens flagged among clean Gaussian features",
                       hint="threshold = median + k * 1.4826 * MAD of all the norms")
    n = 10 + torch.randn(4, 250, generator=g)                      # norms: one model, four images
    med, sd = robust_sd(n)
    n[0, 0], n[1, 0], n[2, 0] = med + 5 * sd, med + 7 * sd, med - 9 * sd
    checks.check_equal(find_artifact_tokens(n).nonzero().tolist(), [[1, 0]],
                       name="tokens flagged among norms with one at 5, one at 7 and one at -9 robust standard deviations",
                       hint="flag only norms ABOVE median + 6 * 1.4826 * MAD: without the factor 1.4826, 6 MADs are "
                            "only about 4 standard deviations")
    checks.check_equal(find_artifact_tokens(n, k=4.0).nonzero().tolist(), [[0, 0], [1, 0]],
                       name="tokens flagged with k=4", hint="use the argument k in the threshold")
    many = torch.randn(4, 100, 32, generator=g)
    many[:, :10] *= 5                                              # 10% outliers
    mask = find_artifact_tokens(many)
    checks.check_true(bool(mask[:, :10].all()) and not bool(mask[:, 10:].any()),
                      f"with 10% outliers, {int(mask[:, :10].sum())} of the 40 outliers and {int(mask[:, 10:].sum())} "
                      "clean tokens were flagged",
                      hint="use the median and the MAD: outliers drag a mean and a standard deviation along")
    two = 10 + torch.randn(2, 300, generator=g)                    # two images at different levels
    two[1] += 6
    med1, sd1 = robust_sd(two[1])
    two[1, 3] = med1 + 12 * sd1                                    # far out in its image, not in the model
    med, sd = robust_sd(two)
    checks.check_equal(find_artifact_tokens(two).nonzero().tolist(), (two > med + 6 * sd).nonzero().tolist(),
                       name="tokens flagged across two images whose norms sit at different levels",
                       hint="one cut-off for the model: the median and MAD of all the norms given, not per image")
    checks.check_equal(find_artifact_tokens(torch.tensor([[1.0, 5.0, 9.0]]), threshold=4.0).tolist(),
                       [[False, True, True]], name="tokens flagged with threshold=4.0", hint="use a threshold when one is given")


checks.run(check_find_artifact_tokens, "Exercise 4 (find_artifact_tokens)")
### BEGIN HIDDEN TESTS
from vitcourse.models import registers as ref
g = torch.Generator().manual_seed(env.grading_seed() + 2)
for _ in range(3):
    B, N, D = int(torch.randint(2, 9, (1,), generator=g)), int(torch.randint(16, 200, (1,), generator=g)), int(torch.randint(4, 64, (1,), generator=g))
    f = torch.randn(B, N, D, generator=g) * float(0.1 + 3 * torch.rand((), generator=g))
    checks.check_equal(int(find_artifact_tokens(f).sum()), 0, name=f"clean features {B}x{N}x{D}")
    idx = torch.randint(0, N, (B,), generator=g)
    f[torch.arange(B), idx] *= float(3 + 5 * torch.rand((), generator=g))
    checks.check_true(torch.equal(find_artifact_tokens(f), ref.find_artifact_tokens(f)),
                      f"planted outliers in {B}x{N}x{D} features: the mask differs from the reference")
    n = f.norm(dim=-1)
    checks.check_true(torch.equal(find_artifact_tokens(n), ref.find_artifact_tokens(n)), "norms as input")
    t = float(n.median())
    checks.check_true(torch.equal(find_artifact_tokens(f, threshold=t), ref.find_artifact_tokens(f, threshold=t)),
                      "find_artifact_tokens with an explicit threshold differs from the reference")
n = 10 + torch.randn(4, 250, generator=g)   # norms; two tokens placed at 5 and 7 robust standard deviations
n[0, 0] = n[1, 0] = n.flatten().median()
med = n.flatten().median()
sd = 1.4826 * (n.flatten() - med).abs().median()
n[0, 0], n[1, 0] = med + 5 * sd, med + 7 * sd
want = torch.zeros(4, 250, dtype=torch.bool)
want[1, 0] = True
checks.check_true(torch.equal(find_artifact_tokens(n), want),
                  "a token 5 robust standard deviations above the median must not be flagged, one at 7 must",
                  hint="threshold = median + 6 * 1.4826 * MAD")
many = torch.randn(4, 100, 32, generator=g)
many[:, :10] *= 5   # 10% outliers: they inflate a mean and a standard deviation, not a median and a MAD
mask = find_artifact_tokens(many)
checks.check_equal(mask.dtype, torch.bool, name="dtype of the mask", hint="a comparison (norms > threshold) gives bools")
checks.check_true(bool(mask[:, :10].all()) and not bool(mask[:, 10:].any()),
                  f"with 10% outliers {int(mask[:, :10].sum())} of 40 were flagged and {int(mask[:, 10:].sum())} clean tokens",
                  hint="use the median and the MAD, which a few outliers cannot drag along")
n = 10 + torch.randn(2, 300, generator=g)   # two images whose norms sit at different levels: one cut-off for both
n[1] += 6
n[1, 3] = n[1].median() + 12 * 1.4826 * (n[1] - n[1].median()).abs().median()   # far out in its image, not in the batch
checks.check_true(torch.equal(find_artifact_tokens(n), ref.find_artifact_tokens(n)),
                  "with two images whose norms sit at different levels the mask differs from the reference",
                  hint="take the median and the MAD of all the norms of the batch together, not per image")
n = 10 + torch.rand(4, 250, generator=g)   # no tail: every clean token far below any cut-off tried
med = n.flatten().median()
sd = 1.4826 * (n.flatten() - med).abs().median()
n[2, 7], n[3, 0] = med + 4.5 * sd, med + 7 * sd
for k in (3.0, 4.0, 8.0):
    checks.check_true(torch.equal(find_artifact_tokens(n, k=k), ref.find_artifact_tokens(n, k=k)),
                      f"find_artifact_tokens(norms, k={k}) differs from the reference", hint="threshold = median + k * 1.4826 * MAD")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. A controlled experiment: must global information live somewhere?
#
# If artifact tokens are improvised storage for a summary of the image, a task that needs such a summary,
# on images with plenty of empty patches, should invite them, and registers should take the job over. The
# task: a 24 × 24 canvas (36 patches of 4 × 4) holds two small digits at random places, and the label says
# whether they are the **same digit**. No patch can answer alone, and about 28 of the 36 patches are blank.
# The same small ViT is trained with 0 and with 4 registers on the same canvases; on held-out canvases we
# compare the norms of background and ink tokens leaving the last block, how many background tokens
# `find_artifact_tokens` flags, and where the class token looks.
#
# ### Exercise 5 — `attention_shares` (2 points)
#
# `attention_shares(attn, num_registers, ink)`: `attn` holds one block's attention weights
# `(B, heads, T, T)` with `T = 1 + R + N` (rows: the token that reads; columns: the token read), `ink` is a
# bool mask `(B, N)` of the patches that hold ink. Return a `(B, 4)` tensor: for each image, how the class
# token's attention, averaged over the heads, divides between itself, the registers, the ink patches and
# the background patches, in that order (each row sums to 1). With `num_registers=0` the registers' share
# is 0. The result keeps the dtype and device of `attn`.

# %% nbgrader={"grade": false, "grade_id": "attention_shares", "locked": false, "schema_version": 3, "solution": true, "task": false}
def attention_shares(attn, num_registers, ink):
    """(B, heads, T, T) attention, (B, N) ink mask -> (B, 4): the class token's attention on
    [itself, the registers, ink patches, background patches], averaged over heads."""
    ### BEGIN SOLUTION
    row = attn.mean(dim=1)[:, 0]                                   # (B, T): what the class token reads
    patches = row[:, 1 + num_registers:]                           # (B, N)
    ink = ink.to(patches.dtype)
    return torch.stack([row[:, 0], row[:, 1:1 + num_registers].sum(-1), (patches * ink).sum(-1),
                        (patches * (1 - ink)).sum(-1)], dim=-1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_attention_shares", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def check_attention_shares():
    torch.manual_seed(0)
    B, heads, R, N = 3, 2, 2, 6
    attn = torch.randn(B, heads, 1 + R + N, 1 + R + N).softmax(dim=-1)
    ink = torch.rand(B, N) < 0.4
    row = attn.mean(1)[:, 0]
    patches = row[:, 1 + R:]
    expected = torch.stack([row[:, 0], row[:, 1:1 + R].sum(-1), (patches * ink).sum(-1), (patches * ~ink).sum(-1)], -1)
    shares = attention_shares(attn, R, ink)
    checks.check_shape(shares, (B, 4), name="attention_shares of (3, 2, 9, 9) weights",
                       hint="one row per image: [itself, registers, ink, background]")
    first_head = attn[:, 0, 0]
    column = attn.mean(1)[:, :, 0]
    checks.check_close(shares, expected, name="attention_shares with 2 registers",
                       mistakes={"taking the first head instead of the mean over heads":
                                 torch.stack([first_head[:, 0], first_head[:, 1:3].sum(-1),
                                              (first_head[:, 3:] * ink).sum(-1), (first_head[:, 3:] * ~ink).sum(-1)], -1),
                                 "reading column 0 (who attends TO the class token) instead of row 0":
                                 torch.stack([column[:, 0], column[:, 1:3].sum(-1), (column[:, 3:] * ink).sum(-1),
                                              (column[:, 3:] * ~ink).sum(-1)], -1),
                                 "swapping ink and background": expected[:, [0, 1, 3, 2]]},
                       hint="row 0 of the head-averaged weights; registers are columns 1 .. R, patches the rest")
    checks.check_dtype(attention_shares(attn.double(), R, ink), torch.float64, name="attention_shares of float64 weights",
                       hint="keep the dtype of attn: turn the ink mask into attn's dtype, not into float32")
    plain = torch.randn(B, heads, 1 + N, 1 + N).softmax(dim=-1)
    checks.check_close(attention_shares(plain, 0, ink)[:, 1], torch.zeros(B), name="the registers' share without registers",
                       hint="with num_registers=0 the registers' share is 0 and the patches start at column 1")
    checks.check_on_meta(lambda: attention_shares(torch.empty(B, heads, 7, 7, device="meta"), 0,
                                                  torch.empty(B, 6, dtype=torch.bool, device="meta")),
                         name="attention_shares without registers", shape=(B, 4),
                         hint="build the result from slices of attn (a sum over an empty slice is 0), not from torch.zeros")


checks.run(check_attention_shares, "Exercise 5 (attention_shares)")
### BEGIN HIDDEN TESTS
from vitcourse.models import registers as ref
g = torch.Generator().manual_seed(env.grading_seed() + 7)
for R, dtype in ((0, torch.float32), (1, torch.float64), (4, torch.float32)):
    B, heads, N = (int(v) for v in torch.randint(1, 6, (3,), generator=g))
    T = 1 + R + N
    attn = torch.randn(B, heads, T, T, generator=g, dtype=dtype).softmax(dim=-1)
    ink = torch.rand(B, N, generator=g) < 0.3
    name = f"attention_shares with B={B}, {heads} heads, R={R}, N={N} ({dtype})"
    shares = attention_shares(attn, R, ink)
    checks.check_close(shares, ref.attention_shares(attn, R, ink), name=name)
    checks.check_dtype(shares, dtype, name=name)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 — predict, then run
#
# *Written answer, 2 points, scored by your instructor.*
#
# Before you run the next cell, predict, and write your prediction in the answer cell below:
#
# 1. With 4 registers, what share of the class token's attention in the last block will go to the 4
#    registers? (If it attended uniformly over its 41 tokens, 4/41 ≈ 10% would.)
# 2. Will the background tokens of the model **without** registers be flagged as artifacts, as DINOv2's
#    are?
#
# Then run the cell (it trains both models for a few seconds) and explain what you see: where your
# prediction was right or wrong, and why this small model behaves the way it does.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_predict_registers", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Prediction**
#
# ### BEGIN SOLUTION
# (A prediction is graded for being written before the run and being specific, not for being right.)
# For example: the registers will take more than their uniform 10%, perhaps 20-30%, since they are the
# only tokens free to hold a summary; without registers, some background tokens will have large norms,
# but probably not enough to be flagged.
# ### END SOLUTION
#
# **What happened, and why**
#
# ### BEGIN SOLUTION
# In the tiny budget (100 steps) the model stays near chance (about 50% on a balanced task), the four
# registers receive a little more of the class token's attention than a uniform 4/41 ≈ 10% would give them
# (about 13% here, taken mostly from the background), and nothing is flagged: the background norms without
# registers stay within a few robust standard deviations. The class token does read the registers, but a
# model this small, trained this briefly, has nothing to store and no reason to improvise storage; DINOv2's
# artifacts appear only in large models (ViT-L and above) after long training, once the model is good at
# its task. (Exact numbers vary with the seed and the budget; the reading page reports longer runs.)
#
# **Rubric (2 points).** 1 point: a specific prediction for both parts, written as a prediction. 1 point:
# an explanation that matches the printed numbers (the registers' share compared with 10%, the flag count)
# and gives the reason the small model shows no artifacts (size and training length), not only a
# description of the output.
# ### END SOLUTION

# %% tags=["demo"]
from vitcourse.analysis import attention_maps, block_tokens
from vitcourse.experiments.registers import CANVAS, PATCH, digit_pairs, train_pairs
from vitcourse.viz import plot_norm_histograms

# digit_pairs(n, seed, split): canvases (n, 1, 24, 24), labels (1 = same digit), ink mask (n, 36);
# training and test canvases use different digit images.


def make_model(R, dim=32, depth=2, heads=2):
    return lambda: RegisterViT(img_size=CANVAS, patch_size=PATCH, in_chans=1, num_classes=2, embed_dim=dim,
                               depth=depth, num_heads=heads, num_registers=R)


# tiny: a small model for 100 steps (seconds, the task is barely learned); full: the benchmark's setting
if BUDGET == "full":
    setting, n_train, steps = dict(dim=64, depth=4, heads=4), 4000, 1500
else:
    setting, n_train, steps = {}, 600, 100
xtr, ytr, _ = digit_pairs(n_train, seed=0)
xte, yte, ink = digit_pairs(500, seed=1, split="test")
models = {R: train_pairs(make_model(R, **setting), xtr, ytr, steps, seed=0, device=DEVICE) for R in (0, 4)}
norms = {}
for R, model in models.items():
    with torch.no_grad():
        accuracy = (model(xte).argmax(1) == yte).float().mean().item()
        _, _, patches = split_tokens(block_tokens(model, xte), R)       # tokens leaving the last block
        shares = attention_shares(attention_maps(model, xte, [-1])[0], R, ink).mean(0)
    flagged = find_artifact_tokens(patches)[~ink].float().mean().item()
    print(f"R={R}: accuracy {accuracy:.2f} | class-token attention: itself {shares[0]:.2f}, registers {shares[1]:.2f}, "
          f"ink {shares[2]:.2f}, background {shares[3]:.2f} | background tokens flagged {flagged:.3f}")
    norms[f"{R} registers"] = patches.norm(dim=-1)[~ink]
plot_norm_histograms(norms)
plt.title("background patch-token norms, last block")
plt.show()

# %% tags=["demo"]
fig, axes = plt.subplots(2, 4, figsize=(9, 4.6))
for col in range(4):   # top row: four test canvases
    axes[0, col].imshow(xte[col, 0].numpy(), cmap="gray_r")
    axes[0, col].set_title("same" if yte[col] else "different", fontsize=9)
for col in range(2):   # bottom row: the first two canvases, seen by each model
    for j, R in enumerate((0, 4)):
        a = attention_maps(models[R], xte[col:col + 1], [-1])[0].mean(1)[0, 0, 1 + R:]
        axes[1, 2 * col + j].imshow(a.reshape(6, 6).numpy(), cmap="magma")
        axes[1, 2 * col + j].set_title(f"image {col}, R={R}", fontsize=9)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
plt.suptitle("top: test canvases; bottom: CLS attention over the 6x6 patches, last block")
plt.tight_layout()
plt.show()


# %% [markdown]
# What the small experiment can and cannot show. The mechanism is all here: a task that needs a summary of
# the image, empty patches that could hold one, and registers offered as the alternative; you can measure
# where the class token reads. The artifacts themselves belong to another regime: the paper finds them in
# large models (ViT-L and above), after long training, once the model is good at its task, and a
# few-second CPU run is far from that (the reading page reports the longer benchmark runs). The next
# section looks at the real thing.
#
# ## 4. On a GPU: DINOv2 with and without registers
#
# In the `full` budget (Colab with a GPU and internet) this cell loads the pretrained DINOv2 ViT-L/14
# with and without registers from timm, computes the norms of the patch tokens on the cat photograph,
# and flags the outliers with your `find_artifact_tokens`. Offline, or on CPU, it says so and skips.

# %% tags=["demo"]
def dinov2_norms(name, image):
    import timm
    model = timm.create_model(name, pretrained=True, img_size=518).eval().to(DEVICE)
    with torch.no_grad():
        tokens = model.forward_features(image.to(DEVICE))
    return tokens[:, model.num_prefix_tokens:].norm(dim=-1).cpu()

if BUDGET == "full" and not env.online():
    print("No connection to huggingface.co: the DINOv2 comparison needs internet access to load the weights.")
elif BUDGET == "full":
    try:
        from vitcourse import data
        from vitcourse.viz import plot_norm_map
        cat = data.photo("chelsea", img_size=518)
        mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
        image = ((cat - mean) / std)[None]
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
        for ax, name in zip(axes, ["vit_large_patch14_dinov2.lvd142m", "vit_large_patch14_reg4_dinov2.lvd142m"]):
            n = dinov2_norms(name, image)
            flagged = find_artifact_tokens(n)
            plot_norm_map(n[0], (37, 37), ax=ax, title=f"{name.split('.')[0]}\n{int(flagged.sum())} tokens flagged")
        plt.show()
    except Exception as exc:  # no network or no weights: say so, do not fail the notebook
        print(f"Could not load DINOv2 weights ({type(exc).__name__}); this part needs internet access.")
else:
    print("Budget 'tiny': the DINOv2 comparison runs in the 'full' budget (a GPU with internet access).")

# %% [markdown]
# ## Takeaways
#
# - Register tokens are extra learned prefix tokens, placed after `[CLS]` and before the patches; they
#   carry no position embedding. DINOv2 gives `[CLS]` one ($1 + N$ rows); timm's DINOv2 checkpoints
#   fold that row into `[CLS]` (`no_embed_class=True`, $N$ rows).
# - They are trained (they receive gradients through attention) and discarded at the output: no head
#   and no pooling ever sees them.
# - Artifact tokens are patch tokens with outlying norms; a robust threshold (median + 6 × 1.4826 × MAD)
#   finds them without being fooled by them.
# - The paper's main models use 4 registers; one already removes most artifacts. The gains are a few
#   points on dense tasks (+1.3 mIoU on ADE20k for the DINOv2 ViT-L/14 the authors trained with and without
#   registers) and largest for unsupervised object discovery, which reads attention maps directly.
#
# ## Go further
#
# Make the small experiment come closer to the paper's regime, and find out which ingredient matters.
# In the `full` budget (or on a CPU with patience), train the same-digit task longer and wider
# (`benchmarks/08_registers.py --steps 3000 --dim 96 --depth 6` is a starting point), then vary one thing at
# a time: the number of registers (0, 1, 4, 16), the amount of empty canvas (a 32 × 32 canvas with the same
# two digits), and the training length. **Look for** background tokens whose norms leave the bulk without
# registers, `find_artifact_tokens` flagging them, and the class token's attention moving onto them.
# **It worked** if some setting without registers shows flagged background tokens that the same setting with
# registers does not; if none does, report the largest background norm, in robust standard deviations, as
# a function of model size and steps: the trend tells you how far the regime is.
