# %% [markdown]
# # Chapter 8 — Registers: where artifact tokens come from
#
# Look at the attention maps of a large, well-trained ViT such as DINOv2 ViT-g and you find bright
# specks on the background: a few patch tokens, far from the object, that the `[CLS]` token attends to
# strongly. Darcet et al. (2024, "Vision Transformers Need Registers") showed what they are. A ViT has
# no token meant to hold a summary of the image while its layers work, so a large, long-trained model
# takes over patches whose content their neighbours repeat (a piece of sky, a blank wall) and writes
# **global** information into them. Those tokens end up with feature norms far larger than the others
# (in DINOv2 ViT-g above 150, where typical tokens stay below 100), hold little about their own patch,
# and a lot about the image as a whole.
#
# The fix costs a few tokens: add learnable tokens, **registers**, that belong to no patch, that every
# block may read and overwrite, and that are thrown away at the output. With 4 registers the high-norm
# outliers disappear from the patches and the attention maps become clean.
#
# **You will**
#
# 1. insert register tokens between `[CLS]` and the patches, with position embeddings in timm's layout
#    for DINOv2 checkpoints (`add_prefix_tokens`, the function of chapter 4 with registers added);
# 2. drop the registers from everything a head sees (`split_tokens`, `pool`);
# 3. assemble a ViT with registers that matches timm's `vit_small_patch14_reg4_dinov2` exactly (`RegisterViT`);
# 4. find high-norm artifact tokens with a robust threshold (`find_artifact_tokens`);
# 5. run a small controlled experiment with and without registers.

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
D, N, R = 6, 9, 4
p, c, r = torch.randn(2, N, D), torch.randn(1, 1, D), torch.randn(1, R, D)
pos = torch.randn(1, N, D)
out = add_prefix_tokens(p, pos, cls_token=c, reg_token=r, no_embed_class=True)
checks.check_shape(out, (2, 1 + R + N, D), name="add_prefix_tokens with 4 registers")
checks.check_close(out[:, 0], c[:, 0].expand(2, -1), name="token 0 (cls, no position embedding)")
checks.check_close(out[:, 1:1 + R], r.expand(2, -1, -1), name="tokens 1..4",
                   hint="registers come right after cls and, with no_embed_class=True, get no position embedding")
checks.check_close(out[:, 1 + R:], p + pos, name="patch tokens")
checks.check_shape(add_prefix_tokens(p, pos, cls_token=c, reg_token=None), (2, 1 + N, D), name="without registers")
print("add_prefix_tokens: visible checks passed")
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
for R in (0, 3):
    for nec in (True, False):
        meta = lambda *shape: torch.empty(*shape, device="meta")
        out = checks.check_on_meta(
            lambda: add_prefix_tokens(meta(2, 5, 4), meta(1, 5 if nec else 1 + R + 5, 4), cls_token=meta(1, 1, 4),  # noqa: B023 - called at once
                                      reg_token=meta(1, R, 4) if R else None, no_embed_class=nec),  # noqa: B023
            name=f"add_prefix_tokens with R={R}, no_embed_class={nec}",
            hint="a tensor created inside the function is on the CPU: create it on the inputs' device "
                 "(device=patch_tokens.device), or leave out what is missing")
        checks.check_shape(out, (2, 1 + R + 5, 4), name=f"add_prefix_tokens on the meta device, R={R}")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 — dropping the registers (3 points)
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


# %% nbgrader={"grade": true, "grade_id": "test_split_pool", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
t = torch.arange(2 * 14 * 3, dtype=torch.float32).reshape(2, 14, 3)
cls, regs, patches = split_tokens(t, 4)
checks.check_close(cls, t[:, 0], name="cls")
checks.check_shape(regs, (2, 4, 3), name="registers")
checks.check_shape(patches, (2, 9, 3), name="patches")
checks.check_close(pool(t, "avg", 1 + 4), t[:, 5:].mean(1), name="pool(global_pool='avg') with 4 registers",
                   hint="average the patch tokens only: the class token and the registers are not patches")
print("split_tokens and pool: visible checks passed")
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
checks.check_raises(lambda: pool(t, "max", 1), ValueError, name="pool(tokens, 'max')",
                    hint="raise a ValueError for a global_pool other than 'token' and 'avg'")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3 — `RegisterViT` (4 points)
#
# Complete the model. Patch embedding, blocks (with layer scale, as DINOv2), final norm and head are
# given. Create `self.cls_token` `(1, 1, D)`, `self.reg_token` `(1, R, D)` (or `None` when `num_registers=0`) and
# `self.pos_embed` (`(1, N, D)` with `no_embed_class`, else `(1, 1 + R + N, D)`), all initialised with
# `nn.init.trunc_normal_(std=0.02)`, and write `forward_features` (all tokens after the final norm) and
# `forward` (your `pool`, then the head). Parameter names follow timm, so timm's weights load directly.
# (For mean pooling timm normalises after pooling instead of before; we keep one norm before pooling for
# both modes, so only `global_pool="token"` is compared with timm.)
#
# The hidden checks load timm's weights into your model for 0, 1, 2 and 4 registers, both layouts and
# other image, patch and channel sizes, and compare `forward_features` (which ends with the final norm) as
# well as the logits. They check the initialisation: each of the three tensors has a standard deviation
# near 0.02, and no two registers are equal (registers that start equal receive equal gradients and
# stay equal forever). They also run your model on the `meta` device.

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
torch.manual_seed(0)
small = RegisterViT(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=2, num_heads=2)
checks.check_shape(small.reg_token, (1, 4, 16), name="reg_token")
checks.check_shape(small.pos_embed, (1, 16, 16), name="pos_embed (no_embed_class=True: patches only)")
checks.check_shape(small(torch.randn(2, 1, 16, 16)), (2, 3), name="logits")
print("RegisterViT: visible checks passed")
### BEGIN HIDDEN TESTS
import timm
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
### END HIDDEN TESTS

# %% [markdown]
# ### Token accounting and gradients (5 points)
#
# A register costs as much as a patch token in every block. With `num_tokens` from chapter 1 the
# sequence length of DINOv2 ViT-S/14 at 224 px with 4 registers is 261 instead of 257: about 1.6% more
# tokens (and a little more attention cost) for the whole fix. The registers are trained like any other
# parameter: their gradient comes through attention, since the other tokens read them.

# %% nbgrader={"grade": true, "grade_id": "test_token_accounting", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
for R in (0, 1, 4):
    m = RegisterViT(img_size=28, patch_size=14, in_chans=3, num_classes=2, embed_dim=12, depth=1, num_heads=2,
                    num_registers=R)
    out = m.forward_features(torch.randn(2, 3, 28, 28))
    checks.check_equal(out.shape[1], num_tokens(28, 28, 14, num_registers=R), name=f"sequence length with {R} registers")
checks.check_equal(num_tokens(224, 224, 14, num_registers=4), 261, name="DINOv2 ViT-S/14 + 4 registers at 224 px")
print("token accounting: visible checks passed")
### BEGIN HIDDEN TESTS
for R, nec, img, patch in [(2, False, 24, 6), (3, True, 20, 5), (0, False, 16, 8)]:
    m = RegisterViT(img_size=img, patch_size=patch, in_chans=1, num_classes=2, embed_dim=8, depth=1, num_heads=2,
                    num_registers=R, no_embed_class=nec)
    out = m.forward_features(torch.randn(3, 1, img, img))
    checks.check_shape(out, (3, num_tokens(img, img, patch, num_registers=R), 8),
                       name=f"forward_features with {R} registers, no_embed_class={nec}, {img} px, patch {patch}")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_register_gradients", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
m = RegisterViT(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=2, num_heads=2, num_registers=4)
m(torch.randn(4, 1, 16, 16)).sum().backward()
checks.check_true(m.reg_token.grad is not None and m.reg_token.grad.abs().sum() > 0,
                  "the registers received no gradient: are they part of the sequence the blocks see?")
print("register gradients: visible checks passed")
### BEGIN HIDDEN TESTS
grads = m.reg_token.grad[0]
gaps = (grads[:, None] - grads[None]).norm(dim=-1) / grads.norm(dim=-1).max() + torch.eye(4)
checks.check_true(float(gaps.min()) > 1e-4, "two registers received the same gradient: they can never become different",
                  hint="registers that start equal stay equal; initialise reg_token at random (trunc_normal_, std 0.02)")
m.eval()
x = torch.randn(3, 1, 16, 16)
with torch.no_grad():
    feats = m.forward_features(x)
    changed = feats.clone()
    changed[:, 1:5] += 50.0
    for mode in ("token", "avg"):
        checks.check_close(pool(changed, mode, 5), pool(feats, mode, 5), name=f"pool({mode!r}) with changed registers",
                           hint="registers must not reach the pooled output")
    m.global_pool = "avg"
    checks.check_close(m(x), m.head(feats[:, 5:].mean(1)), atol=1e-6, name="RegisterViT with global_pool='avg'",
                       hint="mean over the patch tokens only")
### END HIDDEN TESTS

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
g = torch.Generator().manual_seed(0)
clean = torch.randn(8, 64, 32, generator=g)
checks.check_equal(int(find_artifact_tokens(clean).sum()), 0, name="flags in clean Gaussian features")
planted = clean.clone()
planted[0, 5] *= 5
planted[3, 40] *= 5
mask = find_artifact_tokens(planted)
checks.check_shape(mask, (8, 64), name="mask")
checks.check_equal(sorted(map(tuple, mask.nonzero().tolist())), [(0, 5), (3, 40)], name="flagged tokens",
                   hint="flag tokens whose norm is above median + 6 * 1.4826 * MAD of all norms")
checks.check_equal(find_artifact_tokens(torch.tensor([[1.0, 5.0, 9.0]]), threshold=4.0).tolist(),
                   [[False, True, True]], name="explicit threshold on norms")
print("find_artifact_tokens: visible checks passed")
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
    checks.check_true(torch.equal(find_artifact_tokens(f, threshold=t), n > t), "explicit threshold")
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
# The paper's explanation: a model that needs to compute a global summary, and has more capacity than
# useful patch content, stores that summary in low-information patch tokens. We build a task that needs
# global information and has plenty of empty patches: a 24 × 24 canvas (36 patches of 4 × 4) with two
# small digits at random places; the label says whether they are the **same digit**. No single patch can
# answer; about 28 of the 36 patches are blank background. We train the same small ViT with 0 and 4
# registers on the same data and compare, on held-out canvases:
#
# - the norms of the background and the ink patch tokens at the output of the last block;
# - how many background tokens `find_artifact_tokens` flags;
# - where the class token of the last block looks: background, ink, registers.

# %% tags=["demo"]
from vitcourse.analysis import attention_maps, block_tokens
from vitcourse.experiments.registers import CANVAS, PATCH, digit_pairs, measure, train_pairs
from vitcourse.viz import plot_norm_histograms

# digit_pairs(n, seed, split): canvases (n, 1, 24, 24), labels (1 = same digit), ink mask (n, 36);
# training and test canvases use different digit images.


def make_model(R, dim=32, depth=2, heads=2):
    return lambda: RegisterViT(img_size=CANVAS, patch_size=PATCH, in_chans=1, num_classes=2, embed_dim=dim,
                               depth=depth, num_heads=heads, num_registers=R)


# tiny: a small model for 100 steps (seconds, the task is barely learned); full: the benchmark's setting
if BUDGET == "full":
    setting, n_train = dict(dim=64, depth=4, heads=4), 4000
    steps = 1500
else:
    setting, n_train, steps = {}, 600, 100
xtr, ytr, _ = digit_pairs(n_train, seed=0)
xte, yte, ink = digit_pairs(500, seed=1, split="test")
models = {R: train_pairs(make_model(R, **setting), xtr, ytr, steps, seed=0, device=DEVICE) for R in (0, 4)}

# %% tags=["demo"]
norms = {}
for R, model in models.items():
    m = measure(model, R, xte, yte, ink)   # tokens leaving the last block, before the final norm
    print(f"R={R}: accuracy {m['acc']:.3f} | median norm background {m['norm_bg']:.1f}, ink {m['norm_ink']:.1f}, "
          f"max background {m['norm_bg_max']:.1f} | background tokens flagged {m['flagged_bg']:.3f} | "
          f"CLS attention: background {m['attn_bg']:.2f}, ink {m['attn_ink']:.2f}, registers {m['attn_reg']:.2f}")
    _, _, patches = split_tokens(block_tokens(model, xte), R)
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
# What this small experiment does and does not show. In our runs (see the reading page for the numbers),
# the small ViT learns the task only partly in a CPU budget, and **neither** model develops the extreme
# high-norm background tokens of DINOv2: nothing is flagged. What changes is where the class token looks:
# with registers, part of its attention goes to the registers. The paper's artifacts appear in large
# models (ViT-L and above), after long training, and only once the model is good at its task; a
# few-minute CPU run is far from that regime. The mechanism (a place for global computation) can be
# built and measured here; the dramatic effect needs the real models, below.
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
    except Exception as exc:  # noqa: BLE001 - no network or no weights: say so, do not fail the notebook
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
#   points on dense tasks (e.g. +1.3 mIoU on ADE20k for DINOv2) and largest for unsupervised object
#   discovery, where clean attention maps matter most.
