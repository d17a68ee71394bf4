# %% [markdown]
# # Chapter 4 — DeiT: learning from a CNN teacher through a distillation token
#
# A ViT has no built-in notion that neighbouring pixels belong together; it must learn it from data.
# On ImageNet-1k alone, without the hundreds of millions of extra images the original ViT was
# pre-trained on, that is hard. DeiT (Touvron et al., 2021) closed most of the gap with a strong
# training recipe and one architectural idea: a second learned token, the **distillation token**, whose
# output is trained to imitate a convolutional teacher.
#
# **You will**
#
# 1. put a distillation token next to `[CLS]` and give the ViT a second head (`add_prefix_tokens`, `DistilledViT`);
# 2. write DeiT's loss with no, soft and hard distillation (`DistillationLoss`), with a frozen teacher;
# 3. read predictions from the class head, the distillation head or both (`predict`);
# 4. train a small CNN teacher on the digits and the same ViT three ways, and measure which head
#    agrees with the teacher.

# %% [markdown]
# This notebook is the exercise of [Chapter 4 — DeiT: learning from a CNN teacher](https://vit-from-scratch.github.io/vit-course/book/04-deit.html)
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
# **Time and points.** Top to bottom, the notebook runs in about 40 seconds on a two-core CPU
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
import warnings
import torch
import torch.nn.functional as F
from torch import nn
from vitcourse import checks, env
from vitcourse.models.patches import PatchEmbed
from vitcourse.models.vit import Block

DEVICE, BUDGET = env.device(), env.budget()
print(env.describe())


# %% [markdown]
# ## 1. Two prefix tokens
#
# A DeiT model reads the sequence
#
# $$[\,\texttt{cls},\ \texttt{dist},\ x_1, \dots, x_N\,] + E_\text{pos}, \qquad E_\text{pos} \in \mathbb{R}^{(N+2) \times D}.$$
#
# Both prefix tokens are learned vectors, the same for every image; the position embedding has a slot for
# each of them, exactly as it has one for `[CLS]` in a plain ViT. They travel through the same blocks and
# attend to the patches and to each other. At the end, `head` reads the `cls` output and is trained on the
# true labels; `head_dist` reads the `dist` output and is trained on the teacher's predictions.
#
# ### Exercise 1 — `add_prefix_tokens` (3 points)
#
# Write `add_prefix_tokens(patch_tokens, pos_embed, cls_token, dist_token)`: patch tokens `(B, N, D)`,
# `pos_embed` of shape `(1, N + 2, D)`, `cls_token` and `dist_token` of shape `(1, 1, D)`. Return
# `(B, N + 2, D)`: cls first, dist second, then the patches, plus the position embedding. (Chapter 8
# extends the same function with register tokens; the course's `ViT` uses it for all its prefix tokens.)
# Build the sequence from the inputs themselves (`expand` the tokens to the batch, `torch.cat`): the
# learned tokens must receive gradients, and the inputs may live on a GPU, so a tensor newly created on
# the CPU does not fit. The hidden checks vary the batch, the number of patches and the width, and run
# your function on PyTorch's `meta` device, where a tensor left on the CPU shows up as an error.

# %% nbgrader={"grade": false, "grade_id": "add_prefix_tokens", "locked": false, "schema_version": 3, "solution": true, "task": false}
def add_prefix_tokens(patch_tokens: torch.Tensor, pos_embed: torch.Tensor, cls_token: torch.Tensor,
                      dist_token: torch.Tensor) -> torch.Tensor:
    """(B, N, D) patches -> (B, N + 2, D): [cls, dist, patches] + pos_embed."""
    ### BEGIN SOLUTION
    B = patch_tokens.shape[0]
    x = torch.cat([cls_token.expand(B, -1, -1), dist_token.expand(B, -1, -1), patch_tokens], dim=1)
    return x + pos_embed
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_add_prefix_tokens", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
D = 8
patches, cls, dist = torch.randn(2, 5, D), torch.randn(1, 1, D), torch.randn(1, 1, D)
pos = torch.randn(1, 7, D)
out = add_prefix_tokens(patches, pos, cls_token=cls, dist_token=dist)
checks.check_shape(out, (2, 7, D), name="add_prefix_tokens on 5 patches")
checks.check_close(out[:, 0], (cls + pos[:, :1])[:, 0].expand(2, -1), name="token 0",
                   hint="token 0 is the class token (plus pos_embed[:, 0])")
checks.check_close(out[:, 1], (dist + pos[:, 1:2])[:, 0].expand(2, -1), name="token 1",
                   hint="token 1 is the distillation token, and it gets a position embedding too")
checks.check_close(out[:, 2:], patches + pos[:, 2:], name="patch tokens")
print("add_prefix_tokens: visible checks passed")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed())
for _ in range(4):
    B, N, D = (int(v) for v in torch.randint(1, 9, (3,), generator=g))
    p, c, d = torch.randn(B, N, D, generator=g), torch.randn(1, 1, D, generator=g), torch.randn(1, 1, D, generator=g)
    e = torch.randn(1, N + 2, D, generator=g)
    c.requires_grad_(True), d.requires_grad_(True)
    want = torch.cat([c.expand(B, -1, -1), d.expand(B, -1, -1), p], 1) + e
    got = add_prefix_tokens(p, e, cls_token=c, dist_token=d)
    checks.check_close(got, want, name=f"add_prefix_tokens with B={B}, N={N}, D={D}")
    checks.check_equal(got.dtype, torch.float32, name="dtype of the tokens")
    checks.check_true(got.requires_grad, "no gradient can reach the class and distillation tokens",
                      hint="use the learned tokens themselves (no .data or .detach())")
    got.sum().backward()
    checks.check_true(c.grad is not None and d.grad is not None and bool((c.grad == B).all()) and bool((d.grad == B).all()),
                      "the class and distillation tokens must receive a gradient from every image of the batch",
                      hint="use the learned tokens themselves (no .data or .detach())")
# device: on the meta device (shapes only), a tensor created on the CPU raises
out = checks.check_on_meta(
    lambda: add_prefix_tokens(torch.empty(3, 5, 8, device="meta"), torch.empty(1, 7, 8, device="meta"),
                              cls_token=torch.empty(1, 1, 8, device="meta"), dist_token=torch.empty(1, 1, 8, device="meta")),
    name="add_prefix_tokens",
    hint="build the sequence from the inputs (torch.cat of expanded tokens), or create tensors with device=x.device")
_ = checks.check_shape(out, (3, 7, 8), name="add_prefix_tokens on the meta device")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 — `DistilledViT` (5 points)
#
# Complete the model. The patch embedding (chapter 1), the blocks (chapter 3), the final norm and both
# heads are given. Create `self.cls_token`, `self.dist_token` (each `(1, 1, D)`) and `self.pos_embed`
# (`(1, N + 2, D)`) as three separate parameters, each initialised with its own
# `nn.init.trunc_normal_(..., std=0.02)`, and write `forward_features(x)`: `(B, C, H, W)` → all tokens
# `(B, N + 2, D)` after the blocks and the final norm. The hidden checks load your model's weights into
# timm's DeiT and compare `forward_features` and both heads for other image, patch, width, depth and
# class counts, in both modes; they also check the three parameters (separate, learned, std 0.02).
#
# `forward` is given and follows the official code: in training mode it returns both heads' logits
# `(cls_logits, dist_logits)`, in eval mode their average.

# %% nbgrader={"grade": false, "grade_id": "distilled_vit", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DistilledViT(nn.Module):
    """ViT with a class token and a distillation token (DeiT). Parameter names follow timm."""

    def __init__(self, img_size: int = 16, patch_size: int = 4, in_chans: int = 1, num_classes: int = 10,
                 embed_dim: int = 64, depth: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = (img_size // patch_size) ** 2
        ### BEGIN SOLUTION
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 2, embed_dim))
        for p in (self.cls_token, self.dist_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        ### END SOLUTION
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        self.head_dist = nn.Linear(embed_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N + 2, D): [cls, dist, patches] after the blocks and the final norm."""
        ### BEGIN SOLUTION
        x = add_prefix_tokens(self.patch_embed(x), self.pos_embed, self.cls_token, self.dist_token)
        return self.norm(self.blocks(x))
        ### END SOLUTION

    def forward(self, x: torch.Tensor):
        tokens = self.forward_features(x)
        cls_logits, dist_logits = self.head(tokens[:, 0]), self.head_dist(tokens[:, 1])
        if self.training:
            return cls_logits, dist_logits
        return (cls_logits + dist_logits) / 2


# %% nbgrader={"grade": true, "grade_id": "test_distilled_vit", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
model = DistilledViT(img_size=16, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=2, num_heads=2)
checks.check_shape(model.pos_embed, (1, 16 + 2, 32), name="pos_embed",
                   hint="one position per patch plus one for cls and one for dist")
checks.check_shape(model.dist_token, (1, 1, 32), name="dist_token")
tokens = model.forward_features(torch.randn(3, 1, 16, 16))
checks.check_shape(tokens, (3, 18, 32), name="forward_features on (3, 1, 16, 16)")
model.train()
out = model(torch.randn(3, 1, 16, 16))
checks.check_true(isinstance(out, tuple) and len(out) == 2, "in training mode the model returns (cls_logits, dist_logits)")
print("DistilledViT: visible checks passed")
### BEGIN HIDDEN TESTS
from timm.models.deit import VisionTransformerDistilled
g = torch.Generator().manual_seed(env.grading_seed() + 1)
# structure and initialisation: three separate learned parameters, initialised with std 0.02
torch.manual_seed(env.grading_seed())
model = DistilledViT(img_size=16, patch_size=4, in_chans=1, num_classes=10, embed_dim=128, depth=1, num_heads=2)
checks.check_true(model.cls_token is not model.dist_token and model.cls_token.data_ptr() != model.dist_token.data_ptr(),
                  "cls_token and dist_token are one parameter: create two separate nn.Parameters")
params = dict(model.named_parameters())
for name in ("cls_token", "dist_token", "pos_embed"):
    checks.check_true(name in params, f"{name} must be an nn.Parameter of the model (learned), not a buffer or a tensor")
checks.check_true(not torch.equal(model.cls_token, model.dist_token),
                  "cls_token and dist_token start equal: initialise each one with its own random draw")
for name in ("cls_token", "dist_token", "pos_embed"):
    std = float(params[name].detach().std())
    checks.check_true(0.012 < std < 0.03, f"{name} has standard deviation {std:.4f} at initialisation, expected about 0.02",
                      hint="nn.init.trunc_normal_(param, std=0.02)")
for _ in range(3):
    P = [2, 4][int(torch.randint(0, 2, (1,), generator=g))]
    D, heads = [(16, 2), (24, 3), (32, 4)][int(torch.randint(0, 3, (1,), generator=g))]
    grid = int(torch.randint(2, 5, (1,), generator=g))
    cfg = dict(img_size=grid * P, patch_size=P, in_chans=int(torch.randint(1, 4, (1,), generator=g)),
               num_classes=int(torch.randint(2, 12, (1,), generator=g)), embed_dim=D,
               depth=int(torch.randint(1, 4, (1,), generator=g)), num_heads=heads,
               mlp_ratio=[2.0, 4.0][int(torch.randint(0, 2, (1,), generator=g))])
    torch.manual_seed(int(torch.randint(0, 10**6, (1,), generator=g)))
    mine = DistilledViT(**cfg)
    with torch.no_grad():
        for p in mine.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    theirs = VisionTransformerDistilled(**cfg)
    theirs.load_state_dict(mine.state_dict(), strict=True)
    checks.check_equal(sum(p.numel() for p in mine.parameters()), sum(p.numel() for p in theirs.parameters()),
                       name=f"number of learned values ({cfg})", hint="one parameter each for cls_token, dist_token, pos_embed")
    x = torch.randn(int(torch.randint(1, 4, (1,), generator=g)), cfg["in_chans"], cfg["img_size"], cfg["img_size"], generator=g)
    mine.eval(); theirs.eval()
    with torch.no_grad():
        feats = theirs.forward_features(x)
        checks.check_close(mine.forward_features(x), feats, atol=1e-5,
                           name=f"forward_features against timm's DeiT ({cfg})",
                           hint="order cls, dist, patches; the position embedding covers all N + 2 tokens; the final "
                                "norm belongs to forward_features")
        checks.check_close(mine(x), theirs(x), atol=1e-5, name="eval-mode logits against timm's DeiT")
    mine.train()
    out = mine(x)
    checks.check_true(isinstance(out, tuple) and len(out) == 2, "in training mode the model returns (cls_logits, dist_logits)")
    checks.check_close(out[0], theirs.head(feats[:, 0]), atol=1e-5, name="training-mode class logits")
    checks.check_close(out[1], theirs.head_dist(feats[:, 1]), atol=1e-5, name="training-mode distillation logits")
    mine.zero_grad()
    (out[0].sum() + 2 * out[1].sum()).backward()
    for name in ("cls_token", "dist_token", "pos_embed"):
        grad = getattr(mine, name).grad
        checks.check_true(grad is not None and float(grad.abs().sum()) > 0, f"{name} received no gradient")
    checks.check_true(not torch.allclose(mine.cls_token.grad, mine.dist_token.grad),
                      "cls_token and dist_token received the same gradient: are they one parameter?")
# device: the model on the meta device (shapes only): a tensor created on the CPU raises
_ = checks.check_on_meta(lambda: DistilledViT(img_size=8, patch_size=4, in_chans=2, num_classes=3, embed_dim=16, depth=1,
                                              num_heads=2).to("meta").forward_features(torch.empty(2, 2, 8, 8, device="meta")),
                         name="DistilledViT.forward_features",
                         hint="create tensors on the input's device (device=x.device, new_zeros, zeros_like), "
                              "or expand the learned tokens")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The distillation loss
#
# Let $Z_s$ be the class-head logits, $Z_d$ the distillation-head logits, $Z_t$ the teacher's logits, $y$
# the true label, $\psi$ the softmax and $\tau$ a temperature. DeiT trains with
#
# $$\mathcal{L} = (1-\alpha)\, \mathrm{CE}\big(\psi(Z_s), y\big) + \alpha\, \mathcal{L}_\text{distill},$$
#
# - **soft** distillation: $\mathcal{L}_\text{distill} = \tau^2\, \mathrm{KL}\big(\psi(Z_t/\tau)\,\|\,\psi(Z_d/\tau)\big)$, the classic
#   knowledge distillation of Hinton et al. The factor $\tau^2$ keeps the gradient's size independent
#   of the temperature. The official code sums the KL over the batch and the classes and divides by the
#   number of logits ($B \times K$), not by $B$; we do the same, so the values match the official code.
# - **hard** distillation: $\mathcal{L}_\text{distill} = \mathrm{CE}\big(\psi(Z_d), y_t\big)$ with $y_t = \arg\max_c Z_t(c)$, the
#   teacher's decision used as a label. The paper uses $\alpha = 1/2$ here and finds it better than soft
#   distillation.
# - **none**: only the first term.
#
# The teacher is a fixed function: it must run in **eval mode** (no dropout, batch-norm statistics frozen)
# and receive **no gradient** (`torch.no_grad()`, parameters with `requires_grad=False`).
#
# ### Exercise 3 — `DistillationLoss` (6 points)
#
# `DistillationLoss(base_criterion, teacher, alpha, tau, kind)` with `kind` in `"none"`, `"soft"`, `"hard"`.
# Its `forward(inputs, outputs, labels)` receives the images (for the teacher), the student's
# `outputs` — either a tensor of class logits or the pair `(cls_logits, dist_logits)` — and the labels.
# With `"none"` use the class logits only. Use `base_criterion` as given for the class head's term (it may
# be any loss of logits and labels, e.g. with label smoothing). Raise a `ValueError` for an unknown `kind`.
# In `__init__`, put the teacher in eval mode and switch off its gradients (`requires_grad_(False)`); make
# sure a later `.train()` call on the loss does not put the teacher back into training mode, while it
# still switches the loss itself and returns it, as `nn.Module.train` does.

# %% nbgrader={"grade": false, "grade_id": "distillation_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DistillationLoss(nn.Module):
    """(1 - alpha) * base(cls_logits, labels) + alpha * distillation(dist_logits, teacher(inputs))."""

    def __init__(self, base_criterion: nn.Module, teacher: nn.Module, alpha: float = 0.5, tau: float = 1.0,
                 kind: str = "hard"):
        super().__init__()
        ### BEGIN SOLUTION
        if kind not in ("none", "soft", "hard"):
            raise ValueError(f"kind={kind!r}: use 'none', 'soft' or 'hard'")
        self.base_criterion, self.teacher = base_criterion, teacher
        self.alpha, self.tau, self.kind = alpha, tau, kind
        if teacher is not None:
            teacher.eval()
            teacher.requires_grad_(False)
        ### END SOLUTION

    def train(self, mode: bool = True):
        ### BEGIN SOLUTION
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self
        ### END SOLUTION

    def forward(self, inputs: torch.Tensor, outputs, labels: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        dist_logits = None
        if not isinstance(outputs, torch.Tensor):
            outputs, dist_logits = outputs
        base = self.base_criterion(outputs, labels)
        if self.kind == "none":
            return base
        self.teacher.eval()
        with torch.no_grad():
            teacher_logits = self.teacher(inputs)
        if self.kind == "soft":
            T = self.tau
            distill = F.kl_div(F.log_softmax(dist_logits / T, dim=1), F.log_softmax(teacher_logits / T, dim=1),
                               reduction="sum", log_target=True) * T * T / dist_logits.numel()
        else:
            distill = F.cross_entropy(dist_logits, teacher_logits.argmax(dim=1))
        return base * (1 - self.alpha) + distill * self.alpha
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_distillation_loss", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# Visible checks on fixed logits: a teacher that always returns the same logits.
class FixedTeacher(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", logits)   # a buffer: it moves with the module, like the teacher's weights
        self.scale = nn.Parameter(torch.ones(()))
    def forward(self, x):
        return self.logits * self.scale

cls_logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
dist_logits = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 2.0]])
teacher_logits = torch.tensor([[1.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
labels = torch.tensor([0, 1])
x = torch.zeros(2, 1, 4, 4)
ce = F.cross_entropy(cls_logits, labels)
none = DistillationLoss(nn.CrossEntropyLoss(), FixedTeacher(teacher_logits), kind="none")
checks.check_close(none(x, (cls_logits, dist_logits), labels), ce, name="kind='none'",
                   hint="with 'none' only the class head's cross-entropy counts")
hard = DistillationLoss(nn.CrossEntropyLoss(), FixedTeacher(teacher_logits), alpha=0.5, kind="hard")
checks.check_close(hard(x, (cls_logits, dist_logits), labels),
                   0.5 * ce + 0.5 * F.cross_entropy(dist_logits, torch.tensor([1, 2])), name="kind='hard'",
                   hint="hard distillation uses the teacher's argmax as the label of the distillation head")
soft = DistillationLoss(nn.CrossEntropyLoss(), FixedTeacher(teacher_logits), alpha=0.5, tau=2.0, kind="soft")
p_t, log_p_d = torch.softmax(teacher_logits / 2, 1), torch.log_softmax(dist_logits / 2, 1)
kl = (p_t * (p_t.log() - log_p_d)).sum() * 4 / 6
checks.check_close(soft(x, (cls_logits, dist_logits), labels), 0.5 * ce + 0.5 * kl, name="kind='soft', tau=2",
                   hint="KL(teacher || student) at temperature tau, times tau**2, divided by the number of logits")
checks.check_raises(lambda: DistillationLoss(nn.CrossEntropyLoss(), None, kind="medium"), ValueError,
                    name="DistillationLoss(kind='medium')")
print("DistillationLoss: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import deit as ref
g = torch.Generator().manual_seed(env.grading_seed() + 2)
for kind in ("none", "soft", "hard"):
    for _ in range(3):
        B, K = int(torch.randint(1, 9, (1,), generator=g)), int(torch.randint(2, 12, (1,), generator=g))
        alpha, tau = float(torch.rand((), generator=g)), float(0.5 + 4 * torch.rand((), generator=g))
        s, d, t = (torch.randn(B, K, generator=g) * 3 for _ in range(3))
        y = torch.randint(0, K, (B,), generator=g)
        smoothing = float(torch.rand((), generator=g)) * 0.3   # any base criterion: here with label smoothing
        mine = DistillationLoss(nn.CrossEntropyLoss(label_smoothing=smoothing), FixedTeacher(t), alpha=alpha, tau=tau,
                                kind=kind)
        theirs = ref.DistillationLoss(nn.CrossEntropyLoss(label_smoothing=smoothing), FixedTeacher(t), alpha=alpha,
                                      tau=tau, kind=kind)
        x = torch.zeros(B, 1, 2, 2)
        got = mine(x, (s, d), y)
        what = f"kind={kind!r}, alpha={alpha:.2f}, tau={tau:.2f}, B={B}, K={K}, base criterion with label_smoothing={smoothing:.2f}"
        checks.check_close(got, theirs(x, (s, d), y), atol=1e-6, name=what,
                           hint="(1 - alpha) * base_criterion(cls_logits, labels) + alpha * distillation term")
        checks.check_shape(got, (), name="the loss (a scalar)")
        checks.check_equal(got.dtype, torch.float32, name="dtype of the loss")
# kind='none' with the class logits alone (a plain tensor, as a model without a distillation head gives)
s3, y3 = torch.randn(3, 5, generator=g), torch.randint(0, 5, (3,), generator=g)
none = DistillationLoss(nn.CrossEntropyLoss(), FixedTeacher(torch.zeros(3, 5)), kind="none")
_ = checks.check_close(none(torch.zeros(3, 1, 2, 2), s3, y3), F.cross_entropy(s3, y3), name="kind='none' with a tensor of logits",
                       hint="outputs is either a tensor of class logits or the pair (cls_logits, dist_logits)")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_teacher_frozen", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
criterion = DistillationLoss(nn.CrossEntropyLoss(), teacher, alpha=0.5, tau=1.0, kind="soft")
checks.check_true(not teacher.training, "the teacher should be in eval mode once the loss is built")
criterion.train()
checks.check_true(not teacher.training, "criterion.train() must not put the teacher back into training mode")
student = nn.Sequential(nn.Flatten(), nn.Linear(16, 6))
x, y = torch.randn(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
out = student(x)
criterion(x, (out[:, :3], out[:, 3:]), y).backward()
checks.check_true(all(p.grad is None for p in teacher.parameters()),
                  "the teacher received gradients: call it under torch.no_grad() and switch off requires_grad")
checks.check_true(student[1].weight.grad is not None, "the student received no gradient")
print("teacher: visible checks passed")
### BEGIN HIDDEN TESTS
out = out.detach()
teacher.train()  # woken up after the loss was built: the loss must still use it in eval mode
stats = teacher[2].running_mean.clone()
crit = DistillationLoss(nn.CrossEntropyLoss(), teacher, alpha=0.5, tau=1.0, kind="hard")
teacher.train()
with torch.no_grad():
    ref_logits = teacher.eval()(x)
teacher.train()
hard_ref = 0.5 * F.cross_entropy(out[:, :3], y) + 0.5 * F.cross_entropy(out[:, 3:], ref_logits.argmax(1))
checks.check_close(crit(x, (out[:, :3], out[:, 3:]), y), hard_ref, atol=1e-6,
                   name="loss with a teacher switched to train mode after the loss was built",
                   hint="run the teacher in eval mode inside forward as well")
checks.check_close(teacher[2].running_mean, stats, name="the teacher's batch-norm statistics",
                   hint="a teacher in training mode updates its batch-norm statistics")
checks.check_true(all(not p.requires_grad for p in teacher.parameters()),
                  "the teacher's parameters still require gradients: call teacher.requires_grad_(False) in __init__")
checks.check_true(crit.train() is crit and crit.eval() is crit and not teacher.training,
                  "train() must return the loss module itself (as nn.Module.train does) and keep the teacher in eval mode")
_ = checks.check_true(crit.training is False and crit.train().training is True,
                      "train(mode) must still switch the loss module's own mode (call super().train(mode))")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Three ways to predict
#
# After training, the model has two classifiers. The paper reports each and their **late fusion**. Its
# text says the two heads' *softmax outputs* are added; the official code (and timm) return the
# *average of the two heads' logits*, `(x + x_dist) / 2`, in eval mode. We follow the code, because that
# is what the released checkpoints compute; the two rules nearly always pick the same class, but they are
# different functions: for logits `[3, 2.5, -3]` and `[0, 1, 4]` the mean of the logits picks class 1, the mean of the softmaxes class 2.
#
# ### Exercise 4 — `predict` (2 points)
#
# `predict(model, x, mode)` returns logits `(B, K)` from `"cls"`, `"dist"` or `"avg"` (the mean of the two
# heads' logits), computed without gradients, for any model with `forward_features`, `head` and
# `head_dist` laid out as above (timm's DeiT too), whatever mode the model is in: remember that `model(x)`
# returns a pair in training mode. Raise a `ValueError` for another mode.

# %% nbgrader={"grade": false, "grade_id": "predict", "locked": false, "schema_version": 3, "solution": true, "task": false}
def predict(model: nn.Module, x: torch.Tensor, mode: str = "avg") -> torch.Tensor:
    """Logits (B, K) from the class head, the distillation head, or the mean of both."""
    ### BEGIN SOLUTION
    if mode not in ("cls", "dist", "avg"):
        raise ValueError(f"mode={mode!r}: use 'cls', 'dist' or 'avg'")
    with torch.no_grad():
        tokens = model.forward_features(x)
        cls_logits, dist_logits = model.head(tokens[:, 0]), model.head_dist(tokens[:, 1])
    return {"cls": cls_logits, "dist": dist_logits, "avg": (cls_logits + dist_logits) / 2}[mode]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_predict", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(1)
model = DistilledViT(embed_dim=16, depth=1, num_heads=2).eval()
x = torch.randn(4, 1, 16, 16)
tokens = model.forward_features(x)
checks.check_close(predict(model, x, "cls"), model.head(tokens[:, 0]), name="predict(mode='cls')")
checks.check_close(predict(model, x, "dist"), model.head_dist(tokens[:, 1]), name="predict(mode='dist')")
checks.check_close(predict(model, x, "avg"), model(x), name="predict(mode='avg')",
                   hint="average the two heads' logits, as the official code does (no softmax)")
checks.check_raises(lambda: predict(model, x, "vote"), ValueError, name="predict(mode='vote')")
print("predict: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import deit as ref
g = torch.Generator().manual_seed(env.grading_seed() + 3)
with torch.no_grad():
    for p in model.parameters():
        p.add_(torch.randn(p.shape, generator=g))
x = torch.randn(5, 1, 16, 16, generator=g)
for training in (False, True):   # the same logits in either mode: the model has no dropout
    model.train(training)
    for mode in ("cls", "dist", "avg"):
        checks.check_close(predict(model, x, mode), ref.predict(model, x, mode), atol=1e-5,
                           name=f"predict(mode={mode!r}) with the model in {'training' if training else 'eval'} mode",
                           hint="compute both heads from forward_features; model(x) returns a pair in training mode")
checks.check_true(not predict(model, x, "avg").requires_grad, "predict should run without gradients")
# any model laid out the same way: timm's DeiT
from timm.models.deit import VisionTransformerDistilled
other = VisionTransformerDistilled(img_size=8, patch_size=4, in_chans=3, num_classes=4, embed_dim=16, depth=1,
                                   num_heads=2).eval()
with torch.no_grad():
    for p in other.parameters():
        p.add_(torch.randn(p.shape, generator=g))
x = torch.randn(3, 3, 8, 8, generator=g)
for mode in ("cls", "dist", "avg"):
    checks.check_close(predict(other, x, mode), ref.predict(other, x, mode), atol=1e-5,
                       name=f"predict(mode={mode!r}) on timm's VisionTransformerDistilled")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. A CNN teacher for the digits
#
# We use scikit-learn's 1,797 handwritten digits (8 × 8 pixels, bundled, no download), upsampled to
# 16 × 16 so that a ViT with 4 × 4 patches sees a 4 × 4 grid. A seeded, stratified split keeps 500 images
# for training and the rest for testing: small data, the regime where a ViT's missing priors hurt most.
#
# The teacher is a small convolutional network (`vitcourse.models.deit.SmallCNN`): two 3 × 3 convolution
# blocks with pooling. Convolutions *assume* locality and translation equivariance; the ViT has to learn
# them. Training it takes a few seconds.

# %%
from vitcourse.experiments.deit import augment, digits_split, report, train_student, train_teacher
from vitcourse.models.deit import SmallCNN
from vitcourse.models.vit import DIGITS_VIT

# The digits, standardised, 500 of them for training (stratified, seeded); the rest for testing.
xtr, ytr, xte, yte = digits_split(seed=0, train_size=500)
print("train", tuple(xtr.shape), "test", tuple(xte.shape))


# %% tags=["demo"]
# SmallCNN, trained for 300 steps on digits shifted by up to 2 px (vitcourse.experiments.deit.train_teacher)
def accuracy(logits, y):
    return (logits.argmax(1).cpu() == y).float().mean().item()

teacher = train_teacher(xtr, ytr, seed=0, device=DEVICE)
with torch.no_grad():
    print(f"teacher test accuracy: {accuracy(teacher(xte), yte):.3f}")

# %% [markdown]
# ## 5. The same ViT, three ways (4 points)
#
# The student is your `DistilledViT`. Each run starts from the same initialisation and sees the same
# batches; only the loss differs. During training each image gets a random **cut-out**: a 6 × 6 square of
# the 16 × 16 digit is blanked. The teacher was never trained on such views. With hard distillation the
# distillation head learns the teacher's verdict on *the view actually shown* — if the cut-out hides the
# stroke that makes a 7 a 7, the teacher may say 1 — while the class head keeps learning the true label.
# This is the paper's argument for hard distillation with strong augmentation: the teacher's label
# follows the crop.

# %%
SMALL = dict(embed_dim=32, depth=2, num_heads=2)

def make_student(vit=SMALL):
    """Your DistilledViT for the 16 px digits: the course's digits ViT setting, smaller."""
    return lambda: DistilledViT(**(DIGITS_VIT | vit))

# train_student(make, teacher, kind, ...): the same initialisation (seeded) and batches for every kind,
# a random 6 x 6 cut-out on every training view, AdamW with a one-cycle learning rate;
# report(model, teacher, x, y): for each head, (accuracy, agreement with the teacher's class).
xte_cut = augment(xte, torch.Generator().manual_seed(2000), erase=6)   # fixed cut-out test views

# %% [markdown]
# The graded behaviour: after hard distillation, on the cut-out test views, the distillation head agrees
# with the teacher more often than the class head does. (A loss that trains the distillation head on the
# labels, or ignores the teacher, fails it.) It runs in a few seconds.

# %% nbgrader={"grade": true, "grade_id": "test_dist_head_follows_teacher", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
seed = env.grading_seed()
xtr_s, ytr_s, xte_s, yte_s = digits_split(seed=seed)
teacher_s = train_teacher(xtr_s, ytr_s, seed=seed, device="cpu")
student = train_student(make_student(), teacher_s, "hard", xtr_s, ytr_s, seed=seed, device="cpu",
                        loss_cls=DistillationLoss)
cut = augment(xte_s, torch.Generator().manual_seed(2000 + seed), erase=6)
r = report(student, teacher_s, cut, yte_s)
print(f"agreement with the teacher on cut-out views: cls head {r['cls'][1]:.3f}, dist head {r['dist'][1]:.3f}")
checks.check_true(r["dist"][1] > r["cls"][1] + 0.02,
                  f"the distillation head agrees with the teacher {r['dist'][1]:.3f} of the time, the class head "
                  f"{r['cls'][1]:.3f}: the distillation head should follow the teacher (hard targets = teacher argmax)")
checks.check_true(r["cls"][0] > 0.5, f"the class head reaches only {r['cls'][0]:.3f} accuracy on cut-out views")

# %% [markdown]
# Now the comparison. In the `tiny` budget the three runs take seconds; in the `full` budget (a GPU) the
# ViT is larger, trained longer on more images, with shifts and a smaller cut-out.

# %% tags=["demo"]
if BUDGET == "full":
    xtr, ytr, xte, yte = digits_split(seed=0, train_size=1200)
    teacher = train_teacher(xtr, ytr, steps=600, batch=128)
    cfg = dict(steps=1500, batch=128, lr=3e-3, shift=1, erase=4)
    vit = dict(embed_dim=64, depth=4, num_heads=4)
    xte_cut = augment(xte, torch.Generator().manual_seed(2000), erase=4)
else:
    cfg, vit = {"device": "cpu"}, SMALL
with torch.no_grad():
    print(f"teacher: clean {accuracy(teacher(xte), yte):.3f} | "
          f"cut-out {accuracy(teacher(xte_cut), yte):.3f}")
print(f"{'kind':<5} {'head':<5} {'acc clean':>9} {'agree clean':>11} {'acc cut':>8} {'agree cut':>9}")
for kind in ("none", "soft", "hard"):
    student = train_student(make_student(vit), teacher, kind, xtr, ytr, loss_cls=DistillationLoss, **cfg)
    clean, cut = report(student, teacher, xte, yte), report(student, teacher, xte_cut, yte)
    for mode in ("cls", "dist", "avg"):
        note = "  (untrained head)" if kind == "none" and mode != "cls" else ""
        print(f"{kind:<5} {mode:<5} {clean[mode][0]:>9.3f} {clean[mode][1]:>11.3f} {cut[mode][0]:>8.3f} {cut[mode][1]:>9.3f}{note}")

# %% [markdown]
# What to look for:
#
# - With `none`, the distillation head never receives a gradient: its predictions are chance. Only `cls`
#   counts there.
# - With `hard`, the distillation head agrees with the teacher far more often on cut-out views than the
#   class head does, and it inherits the teacher's weaknesses (the teacher never saw cut-outs).
# - Whether distillation *improves* the ViT's accuracy depends on the teacher and the budget. In the
#   paper (ImageNet-1k, a RegNetY-16GF teacher at 82.9%), DeiT-S improves from 79.9% to 81.2% top-1 with
#   the distillation token, and DeiT-B from 81.8% to 83.4% (85.2% at 384 px with longer training). A tiny
#   run on 500 digits is much noisier; the reading page discusses the numbers of a larger run.
#
# ## Takeaways
#
# - DeiT's distillation token is one more learned prefix token with its own position embedding and
#   its own head; everything else is a plain ViT.
# - Soft distillation matches the teacher's temperature-softened distribution (KL × τ²); hard distillation
#   uses the teacher's argmax as a label, which follows the augmentation of each view.
# - The teacher is frozen: eval mode, no gradient.
# - At test time the official code averages the two heads' logits.
#
# Next: chapter 5 drops the labels altogether; a teacher built from the student itself (DINO).
