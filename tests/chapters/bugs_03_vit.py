"""Chapter 3 (ViT): plausible student bugs, each of which must lose points, and the BUGS dict."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from bugs_03_model import (
    make_vit_blocks_discarded,
    make_vit_cls_last,
    make_vit_cpu_cls,
    make_vit_default_eps,
    make_vit_first_block_only,
    make_vit_mean_head,
    make_vit_norm_in_forward,
    make_vit_pos_without_cls,
    make_vit_python_list,
    make_vit_ratio_dropped,
    make_vit_repeated_block,
    make_vit_zero_tokens,
    step_before_backward,
    step_in_eval_mode,
    step_item_before_backward,
    step_returns_tensor,
    step_softmax_then_cross_entropy,
    step_without_zero_grad,
    step_zero_grad_after_backward,
)
from nbexec import Variant


def _masked(scores, mask):
    return scores if mask is None else scores.masked_fill(~mask, float("-inf"))


def attention_ref(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask).softmax(dim=-1)
    return w @ v, w


# Plausible student bugs: attention ----------------------------------------------------------------

def attention_unscaled(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1), mask).softmax(dim=-1)
    return w @ v, w


def attention_wrong_axis(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask).softmax(dim=-2)
    return w @ v, w


def attention_scaled_by_d(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1) / q.shape[-1], mask).softmax(dim=-1)
    return w @ v, w


def attention_transpose_1_2(q, k, v, mask=None):
    """k.transpose(1, 2): right for (B, N, d) tensors, wrong once there are heads."""
    w = _masked(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), mask).softmax(dim=-1)
    return w @ v, w


def attention_cpu_scale(q, k, v, mask=None):
    """The scale as a one-element tensor made on the CPU (a GPU rejects the mix)."""
    w = _masked(q @ k.transpose(-2, -1) / torch.sqrt(torch.tensor([q.shape[-1]], dtype=q.dtype)), mask).softmax(dim=-1)
    return w @ v, w


def attention_float32(q, k, v, mask=None):
    """Computes "in float32 for stability" and never casts back."""
    q, k, v = q.float(), k.float(), v.float()
    w = _masked(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask).softmax(dim=-1)
    return w @ v, w


def attention_mask_ignored(q, k, v, mask=None):
    """Accepts the mask and never uses it."""
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    return w @ v, w


def attention_mask_inverted(q, k, v, mask=None):
    """masked_fill(mask, -inf): True read as "blocked"."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    w = (scores if mask is None else scores.masked_fill(mask, float("-inf"))).softmax(dim=-1)
    return w @ v, w


def attention_mask_zero_scores(q, k, v, mask=None):
    """Masked scores multiplied by the mask: set to 0, not -inf, so masked keys keep a weight."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    w = (scores if mask is None else scores * mask).softmax(dim=-1)
    return w @ v, w


def attention_mask_after_softmax(q, k, v, mask=None):
    """Masked weights zeroed after the softmax: the rows no longer sum to 1."""
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    w = w if mask is None else w * mask
    return w @ v, w


def attention_mask_cpu_fill(q, k, v, mask=None):
    """The masked scores replaced by a full tensor of -inf made on the CPU."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = torch.where(mask, scores, torch.full(scores.shape, float("-inf"), dtype=scores.dtype))
    w = scores.softmax(dim=-1)
    return w @ v, w


# Plausible student bugs: multi-head attention --------------------------------------------------------

def make_attention_heads_first(solution_cls):
    class HeadsFirst(solution_cls):
        """qkv reshaped as (B, N, heads, 3, head_dim): the right shape, the wrong split."""

        def forward(self, x):
            B, N, D = x.shape
            qkv = self.qkv(x).reshape(B, N, self.num_heads, 3, self.head_dim).permute(3, 0, 2, 1, 4)
            q, k, v = qkv.unbind(0)
            out, self.last_attn = attention_ref(q, k, v)
            return self.proj(out.transpose(1, 2).reshape(B, N, D))

    return HeadsFirst


def make_attention_no_merge_transpose(solution_cls):
    class NoTranspose(solution_cls):
        """Heads merged with reshape(B, N, D) straight from (B, heads, N, head_dim)."""

        def forward(self, x):
            B, N, D = x.shape
            q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            out, self.last_attn = attention_ref(q, k, v)
            return self.proj(out.reshape(B, N, D))

    return NoTranspose


def make_attention_no_proj(solution_cls):
    class NoProj(solution_cls):
        def forward(self, x):
            B, N, D = x.shape
            q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            out, self.last_attn = attention_ref(q, k, v)
            return out.transpose(1, 2).reshape(B, N, D)

    return NoProj


def make_attention_always_bias(solution_cls):
    class AlwaysBias(solution_cls):
        """qkv_bias ignored: the qkv projection always has a bias."""

        def __init__(self, dim, num_heads, qkv_bias=True):
            super().__init__(dim, num_heads, True)

    return AlwaysBias


def make_attention_width_scale(solution_cls):
    class WidthScale(solution_cls):
        """Attention written inline, scaled by 1/sqrt(dim) instead of 1/sqrt(head_dim)."""

        def forward(self, x):
            B, N, D = x.shape
            q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            self.last_attn = (q @ k.transpose(-2, -1) / math.sqrt(D)).softmax(dim=-1)
            return self.proj((self.last_attn @ v).transpose(1, 2).reshape(B, N, D))

    return WidthScale


def make_attention_heads_by_reshape(solution_cls):
    class HeadsByReshape(solution_cls):
        """q, k, v split with chunk, then reshape(B, heads, N, head_dim) without a transpose."""

        def forward(self, x):
            B, N, D = x.shape
            q, k, v = (t.reshape(B, self.num_heads, N, self.head_dim) for t in self.qkv(x).chunk(3, dim=-1))
            out, self.last_attn = attention_ref(q, k, v)
            return self.proj(out.transpose(1, 2).reshape(B, N, D))

    return HeadsByReshape


# Plausible student bugs: Mlp and Block ---------------------------------------------------------------

def make_post_norm(solution_cls):
    class PostNormBlock(solution_cls):
        def forward(self, x):
            x = self.norm1(x + self.attn(x))
            return self.norm2(x + self.mlp(x))

    return PostNormBlock


def make_block_without_mlp_residual(solution_cls):
    class Block(solution_cls):
        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return self.mlp(self.norm2(x))

    return Block


def make_block_shared_norm(solution_cls):
    class Block(solution_cls):
        """One LayerNorm for both branches."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.norm2 = self.norm1

    return Block


def make_block_default_eps(solution_cls):
    class Block(solution_cls):
        """nn.LayerNorm(dim): PyTorch's default eps=1e-5 instead of ViT's 1e-6."""

        def __init__(self, dim, *args, **kwargs):
            super().__init__(dim, *args, **kwargs)
            self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    return Block


def make_mlp_activation(solution_cls, act):
    class Mlp(solution_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.act = act

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    return Mlp


def make_mlp_dropout(solution_cls):
    class Mlp(solution_cls):
        """Dropout 0.1 after the activation, as timm's Mlp can: right only in eval mode."""

        def forward(self, x):
            return self.fc2(F.dropout(F.gelu(self.fc1(x)), 0.1, self.training))

    return Mlp


def make_block_ratio_four(ns):
    class Block(ns["Block"]):
        """mlp_ratio ignored: the MLP is always 4 * dim wide."""

        def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True):
            super().__init__(dim, num_heads, mlp_ratio, qkv_bias)
            self.mlp = ns["Mlp"](dim, 4 * dim)

    return Block


def make_block_bias_dropped(ns):
    class Block(ns["Block"]):
        """qkv_bias not passed on to the attention."""

        def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True):
            super().__init__(dim, num_heads, mlp_ratio, qkv_bias)
            self.attn = ns["Attention"](dim, num_heads)

    return Block


def make_block_residual_after_norm(solution_cls):
    class Block(solution_cls):
        """The residual starts from the normalised tokens."""

        def forward(self, x):
            x = self.norm1(x)
            x = x + self.attn(x)
            x = self.norm2(x)
            return x + self.mlp(x)

    return Block


def vit_bug(factory):
    return lambda ns: {"ViT": factory(ns["ViT"])}


BUGS = {
    "attention: no 1/sqrt(d)": Variant({"attention": attention_unscaled}, "test_attention",
                                  check="test_attention", hint="leaving the scores unscaled"),
    "attention: softmax over queries": Variant({"attention": attention_wrong_axis}, "test_attention",
                                  check="test_attention", hint="dim=-1 of the scores"),
    "attention: scaled by 1/d": Variant({"attention": attention_scaled_by_d}, "test_attention",
                                  check="test_attention", hint="dividing the scores by d instead of sqrt(d)"),
    "attention: k.transpose(1, 2)": Variant({"attention": attention_transpose_1_2}, "test_attention",
                                  check="test_attention", hint="k.transpose(-2, -1)"),
    "attention: scale tensor made on the CPU": Variant({"attention": attention_cpu_scale}, "test_attention",
                                  check="test_attention", hint="math.sqrt(d)"),
    "attention: float64 turned into float32": Variant({"attention": attention_float32}, "test_attention",
                                  check="test_attention", hint="keep the inputs' dtype"),
    "attention: mask ignored": Variant({"attention": attention_mask_ignored}, "test_attention",
                                       check="test_attention", hint="ignoring the mask"),
    "attention: mask inverted": Variant({"attention": attention_mask_inverted}, "test_attention",
                                        check="test_attention", hint="inverting the mask"),
    "attention: masked scores set to 0": Variant({"attention": attention_mask_zero_scores}, "test_attention",
                                                 check="test_attention", hint="setting the masked scores to 0"),
    "attention: mask applied after the softmax": Variant({"attention": attention_mask_after_softmax},
                                                         "test_attention", check="test_attention",
                                                         hint="without renormalising the rows"),
    "attention: -inf tensor made on the CPU": Variant({"attention": attention_mask_cpu_fill}, "test_attention",
                                                      check="test_attention", hint="not a tensor made on the CPU"),
    "Attention: qkv split as (heads, 3)": Variant(
        lambda ns: {"Attention": make_attention_heads_first(ns["Attention"])}, "test_mhsa", check="test_mhsa",
        hint="split qkv(x) as (B, N, 3, heads, head_dim)"),
    "Attention: heads merged without transpose": Variant(
        lambda ns: {"Attention": make_attention_no_merge_transpose(ns["Attention"])}, "test_mhsa", check="test_mhsa",
        hint="merging the heads without transpose(1, 2)"),
    "Attention: no output projection": Variant(lambda ns: {"Attention": make_attention_no_proj(ns["Attention"])},
                                               "test_mhsa", check="test_mhsa",
                                               hint="leaving out the output projection"),
    "Attention: qkv_bias ignored": Variant(lambda ns: {"Attention": make_attention_always_bias(ns["Attention"])},
                                           "test_mhsa", check="test_mhsa",
                                           hint="bias=qkv_bias"),
    "Attention: scaled by the full width": Variant(
        lambda ns: {"Attention": make_attention_width_scale(ns["Attention"])}, "test_mhsa", check="test_mhsa",
        hint="scaling by sqrt(dim) instead of sqrt(head_dim)"),
    "Attention: heads split by reshape": Variant(
        lambda ns: {"Attention": make_attention_heads_by_reshape(ns["Attention"])}, "test_mhsa", check="test_mhsa",
        hint="split qkv(x) as (B, N, 3, heads, head_dim)"),
    "Block: post-norm": Variant(lambda ns: {"Block": make_post_norm(ns["Block"])}, "test_block",
                                check="test_block", hint="post-norm, norm(x + f(x))"),
    "Block: no residual around the MLP": Variant(
        lambda ns: {"Block": make_block_without_mlp_residual(ns["Block"])}, "test_block",
        check="test_block", hint="leaving out the residual around the MLP"),
    "Block: one LayerNorm for both branches": Variant(lambda ns: {"Block": make_block_shared_norm(ns["Block"])},
                                                      "test_block", check="test_block",
                                                      hint="two LayerNorms of their own"),
    "Block: LayerNorm eps 1e-5": Variant(lambda ns: {"Block": make_block_default_eps(ns["Block"])}, "test_block",
                                         check="test_block", hint="PyTorch's default eps=1e-5"),
    "Mlp: tanh-approximate GELU": Variant(lambda ns: {"Mlp": make_mlp_activation(ns["Mlp"], nn.GELU("tanh"))},
                                          "test_block", check="test_block", hint="the tanh approximation of GELU"),
    "Mlp: ReLU": Variant(lambda ns: {"Mlp": make_mlp_activation(ns["Mlp"], nn.ReLU())}, "test_block",
                         check="test_block", hint="ReLU instead of GELU"),
    "Mlp: dropout (right only in eval mode)": Variant(lambda ns: {"Mlp": make_mlp_dropout(ns["Mlp"])}, "test_block",
                                                      check="test_block", hint="no dropout in the Mlp"),
    "Block: mlp_ratio ignored": Variant(lambda ns: {"Block": make_block_ratio_four(ns)}, "test_block",
                                        check="test_block", hint="mlp = Mlp(dim, int(dim * mlp_ratio))"),
    "Block: qkv_bias not passed on": Variant(lambda ns: {"Block": make_block_bias_dropped(ns)}, "test_block",
                                             check="test_block", hint="with qkv_bias passed on"),
    "Block: residual from the normalised tokens": Variant(
        lambda ns: {"Block": make_block_residual_after_norm(ns["Block"])}, "test_block",
        check="test_block", hint="starting the residual from the normalised tokens"),
    "ViT: position embedding not covering CLS": Variant(vit_bug(make_vit_pos_without_cls), "test_vit",
                                                        check="test_vit", hint="pos_embed has N + 1 rows"),
    "ViT: mean of all tokens instead of CLS": Variant(vit_bug(make_vit_mean_head), "test_vit",
                                                      check="test_vit", hint="the mean of all tokens"),
    "ViT: one block repeated depth times": Variant(vit_bug(make_vit_repeated_block), "test_vit",
                                                   check="test_vit", hint="[Block(...)] * depth"),
    "ViT: final norm in forward": Variant(vit_bug(make_vit_norm_in_forward), "test_vit",
                                          check="test_vit", hint="forward_features without the final norm"),
    "ViT: blocks in a Python list": Variant(vit_bug(make_vit_python_list), "test_vit",
                                            check="test_vit", hint="a Python list hides the blocks' parameters"),
    "ViT: final LayerNorm eps 1e-5": Variant(vit_bug(make_vit_default_eps), "test_vit",
                                             check="test_vit", hint="default eps=1e-5"),
    "ViT: class token after the patches": Variant(vit_bug(make_vit_cls_last), "test_vit",
                                                  check="test_vit", hint="placing the class token after the patches"),
    "ViT: class token built on the CPU": Variant(vit_bug(make_vit_cpu_cls), "test_vit",
                                                 check="test_vit", hint="expand cls_token to the batch"),
    "ViT: blocks' outputs discarded": Variant(vit_bug(make_vit_blocks_discarded), "test_vit", "test_train_step",
                                              check="test_vit", hint="without keeping their output"),
    "ViT: only the first block runs": Variant(vit_bug(make_vit_first_block_only), "test_vit", "test_train_step",
                                              check="test_vit", hint="running only the first block"),
    "ViT: zero-initialised tokens": Variant(vit_bug(make_vit_zero_tokens), "test_vit",
                                            check="test_vit", hint="torch.randn(...) * 0.02"),
    "ViT: mlp_ratio not passed on": Variant(lambda ns: {"ViT": make_vit_ratio_dropped(ns)}, "test_vit",
                                            check="test_vit", hint="pass mlp_ratio to every Block"),
    "train_step: gradients never cleared": Variant({"train_step": step_without_zero_grad}, "test_train_step",
                                                   check="test_train_step", hint="the gradients of step 1"),
    "train_step: step before backward": Variant({"train_step": step_before_backward}, "test_train_step",
                                                check="test_train_step", hint="equals the weights before the step"),
    "train_step: zero_grad between backward and step": Variant(
        {"train_step": step_zero_grad_after_backward}, "test_train_step",
        check="test_train_step", hint="equals the weights before the step"),
    "train_step: model left in eval mode": Variant({"train_step": step_in_eval_mode}, "test_train_step",
                                                   check="test_train_step", hint="model.train() first"),
    "train_step: returns the loss tensor": Variant({"train_step": step_returns_tensor}, "test_train_step",
                                                   check="test_train_step", hint="return loss.item()"),
    "train_step: cross-entropy of probabilities": Variant(
        {"train_step": step_softmax_then_cross_entropy}, "test_train_step",
        check="test_train_step", hint="the softmax probabilities"),
    "train_step: .item() before backward": Variant({"train_step": step_item_before_backward}, "test_train_step",
                                                   check="test_train_step", hint="keep the loss a tensor"),
}
