"""Chapter 3 graded tests, checked both ways: the solution passes on 10 seeds, each plausible bug loses the
points of the cells named, each correct alternative keeps them."""

import math

import einops
import torch
import torch.nn.functional as F
from torch import nn

from nbexec import Variant
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/03-vit/03-vit.ipynb"


def attention_ref(q, k, v):
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    return w @ v, w


# Plausible student bugs: attention ----------------------------------------------------------------

def attention_unscaled(q, k, v):
    w = (q @ k.transpose(-2, -1)).softmax(dim=-1)
    return w @ v, w


def attention_wrong_axis(q, k, v):
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-2)
    return w @ v, w


def attention_scaled_by_d(q, k, v):
    w = (q @ k.transpose(-2, -1) / q.shape[-1]).softmax(dim=-1)
    return w @ v, w


def attention_transpose_1_2(q, k, v):
    """k.transpose(1, 2): right for (B, N, d) tensors, wrong once there are heads."""
    w = (q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    return w @ v, w


def attention_cpu_scale(q, k, v):
    """The scale as a one-element tensor made on the CPU (a GPU rejects the mix)."""
    w = (q @ k.transpose(-2, -1) / torch.sqrt(torch.tensor([q.shape[-1]], dtype=q.dtype))).softmax(dim=-1)
    return w @ v, w


def attention_float32(q, k, v):
    """Computes "in float32 for stability" and never casts back."""
    q, k, v = q.float(), k.float(), v.float()
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
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


# Plausible student bugs: ViT ---------------------------------------------------------------------------

def make_vit_pos_without_cls(solution_cls):
    class ViT(solution_cls):
        """Adds position embeddings to the patches only; pos_embed has N rows."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pos_embed = torch.nn.Parameter(self.pos_embed.data[:, 1:].clone())

        def forward_features(self, x):
            x = self.patch_embed(x) + self.pos_embed
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
            for block in self.blocks:
                x = block(x)
            return self.norm(x)

    return ViT


def make_vit_mean_head(solution_cls):
    class ViT(solution_cls):
        def forward(self, x):
            return self.head(self.forward_features(x).mean(dim=1))

    return ViT


def make_vit_repeated_block(solution_cls):
    class ViT(solution_cls):
        """nn.ModuleList([Block(...)] * depth): one block, its parameters shared by every layer."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.blocks = nn.ModuleList([self.blocks[0]] * len(self.blocks))

    return ViT


def make_vit_norm_in_forward(solution_cls):
    class ViT(solution_cls):
        """The final norm applied in forward instead of forward_features."""

        def forward_features(self, x):
            x = self.patch_embed(x)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
            for block in self.blocks:
                x = block(x)
            return x

        def forward(self, x):
            return self.head(self.norm(self.forward_features(x))[:, 0])

    return ViT


def make_vit_python_list(solution_cls):
    class ViT(solution_cls):
        """The blocks kept in a Python list: they are not registered as submodules."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            blocks = list(self.blocks)
            del self.blocks
            self.blocks = blocks

    return ViT


def make_vit_default_eps(solution_cls):
    class ViT(solution_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.norm = nn.LayerNorm(self.norm.normalized_shape[0])

    return ViT


def make_vit_cls_last(solution_cls):
    class ViT(solution_cls):
        """The class token appended after the patches; the head still reads token 0."""

        def forward_features(self, x):
            x = self.patch_embed(x)
            x = torch.cat([x, self.cls_token.expand(x.shape[0], -1, -1)], dim=1) + self.pos_embed
            for block in self.blocks:
                x = block(x)
            return self.norm(x)

    return ViT


def make_vit_cpu_cls(solution_cls):
    class ViT(solution_cls):
        """Broadcasts the class token by adding it to zeros made on the CPU."""

        def forward_features(self, x):
            x = self.patch_embed(x)
            cls = torch.zeros(x.shape[0], 1, x.shape[-1]) + self.cls_token
            x = torch.cat([cls, x], dim=1) + self.pos_embed
            for block in self.blocks:
                x = block(x)
            return self.norm(x)

    return ViT


def make_vit_blocks_discarded(solution_cls):
    class ViT(solution_cls):
        """for block in self.blocks: block(x) -- the output is thrown away."""

        def forward_features(self, x):
            x = self.patch_embed(x)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
            for block in self.blocks:
                block(x)
            return self.norm(x)

    return ViT


def make_vit_zero_tokens(solution_cls):
    class ViT(solution_cls):
        """cls_token and pos_embed initialised to zeros."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            nn.init.zeros_(self.cls_token)
            nn.init.zeros_(self.pos_embed)

    return ViT


def make_vit_ratio_dropped(ns):
    class ViT(ns["ViT"]):
        """mlp_ratio not passed on to the blocks."""

        def __init__(self, img_size=16, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                     num_heads=4, mlp_ratio=4.0):
            super().__init__(img_size, patch_size, in_chans, num_classes, embed_dim, depth, num_heads, mlp_ratio)
            self.blocks = nn.ModuleList([ns["Block"](embed_dim, num_heads) for _ in range(depth)])

    return ViT


# Different but correct answers: each must keep full marks -------------------------------------------

def attention_einsum(q, k, v):
    scores = torch.einsum("...id,...jd->...ij", q, k) * q.shape[-1] ** -0.5
    weights = torch.softmax(scores, dim=-1)
    return torch.einsum("...ij,...jd->...id", weights, v), weights


def attention_manual_softmax(q, k, v):
    """Softmax by hand, the maximum subtracted first."""
    scores = (q / math.sqrt(q.size(-1))) @ k.mT
    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    weights = e / e.sum(dim=-1, keepdim=True)
    return weights @ v, weights


def make_attention_chunk_einops(solution_cls):
    class ChunkEinops(solution_cls):
        def forward(self, x):
            q, k, v = (einops.rearrange(t, "b n (h d) -> b h n d", h=self.num_heads)
                       for t in self.qkv(x).chunk(3, dim=-1))
            out, self.last_attn = attention_ref(q, k, v)
            return self.proj(einops.rearrange(out, "b h n d -> b n (h d)"))

    return ChunkEinops


def make_attention_head_loop(solution_cls):
    class HeadLoop(solution_cls):
        """One head at a time over slices of q, k and v, concatenated."""

        def forward(self, x):
            D = x.shape[-1]
            q, k, v = self.qkv(x).split(D, dim=-1)
            outs, maps = [], []
            for h in range(self.num_heads):
                part = slice(h * self.head_dim, (h + 1) * self.head_dim)
                out, w = attention_ref(q[..., part], k[..., part], v[..., part])
                outs.append(out)
                maps.append(w)
            self.last_attn = torch.stack(maps, dim=1)
            return self.proj(torch.cat(outs, dim=-1))

    return HeadLoop


def make_attention_fused_output(solution_cls):
    class FusedOutput(solution_cls):
        """The output from F.scaled_dot_product_attention; the weights computed for last_attn only."""

        def forward(self, x):
            B, N, D = x.shape
            q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, -1).transpose(1, 3).unbind(2)
            self.last_attn = (q @ k.transpose(-2, -1) * self.head_dim**-0.5).softmax(-1)
            out = F.scaled_dot_product_attention(q, k, v)
            return self.proj(out.transpose(1, 2).flatten(2))

    return FusedOutput


def make_mlp_functional(solution_cls):
    class Mlp(solution_cls):
        """F.gelu in forward, no activation module."""

        def __init__(self, in_features, hidden_features):
            nn.Module.__init__(self)
            self.fc1 = nn.Linear(in_features, hidden_features)
            self.fc2 = nn.Linear(hidden_features, in_features)

        def forward(self, x):
            return self.fc2(F.gelu(self.fc1(x)))

    return Mlp


def make_block_functional_norm(solution_cls):
    class Block(solution_cls):
        """F.layer_norm with the modules' own parameters; named intermediate results."""

        def forward(self, x):
            shape = x.shape[-1:]
            h = F.layer_norm(x, shape, self.norm1.weight, self.norm1.bias, 1e-6)
            x = x + self.attn(h)
            h = F.layer_norm(x, shape, self.norm2.weight, self.norm2.bias, 1e-6)
            return x + self.mlp(h)

    return Block


def make_vit_sequential(ns):
    class ViT(ns["ViT"]):
        """Blocks in an nn.Sequential, class token repeated, positions added in two parts."""

        def __init__(self, img_size=16, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                     num_heads=4, mlp_ratio=4.0):
            super().__init__(img_size, patch_size, in_chans, num_classes, embed_dim, depth, num_heads, mlp_ratio)
            self.blocks = nn.Sequential(*[ns["Block"](embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
            self.cls_token = nn.Parameter(torch.empty(1, 1, embed_dim))
            nn.init.trunc_normal_(self.cls_token, std=0.02)

        def forward_features(self, x):
            patches = self.patch_embed(x) + self.pos_embed[:, 1:]
            cls = (self.cls_token + self.pos_embed[:, :1]).repeat(x.shape[0], 1, 1)
            return self.norm(self.blocks(torch.cat((cls, patches), dim=1)))

        def forward(self, x):
            return self.head(self.forward_features(x)[:, 0, :])

    return ViT


ALTERNATIVES = {
    "attention with einsum": Variant({"attention": attention_einsum}, "test_attention", "test_mhsa"),
    "attention with a hand-written softmax": Variant({"attention": attention_manual_softmax},
                                                     "test_attention", "test_mhsa", "test_block"),
    "Attention: chunk and einops": Variant(lambda ns: {"Attention": make_attention_chunk_einops(ns["Attention"])},
                                           "test_mhsa", "test_block"),
    "Attention: a loop over heads": Variant(lambda ns: {"Attention": make_attention_head_loop(ns["Attention"])},
                                            "test_mhsa", "test_block", "test_vit"),
    "Attention: fused output, weights for last_attn": Variant(
        lambda ns: {"Attention": make_attention_fused_output(ns["Attention"])}, "test_mhsa", "test_block"),
    "Mlp with F.gelu": Variant(lambda ns: {"Mlp": make_mlp_functional(ns["Mlp"])}, "test_block", "test_vit"),
    "Block with F.layer_norm": Variant(lambda ns: {"Block": make_block_functional_norm(ns["Block"])},
                                       "test_block", "test_vit"),
    "ViT: nn.Sequential, repeat, positions in two parts": Variant(lambda ns: {"ViT": make_vit_sequential(ns)},
                                                                  "test_vit", "test_overfit"),
}


BUGS = {
    "attention: no 1/sqrt(d)": Variant({"attention": attention_unscaled}, "test_attention"),
    "attention: softmax over queries": Variant({"attention": attention_wrong_axis}, "test_attention"),
    "attention: scaled by 1/d": Variant({"attention": attention_scaled_by_d}, "test_attention"),
    "attention: k.transpose(1, 2)": Variant({"attention": attention_transpose_1_2}, "test_attention"),
    "attention: scale tensor made on the CPU": Variant({"attention": attention_cpu_scale}, "test_attention"),
    "attention: float64 turned into float32": Variant({"attention": attention_float32}, "test_attention"),
    "Attention: qkv split as (heads, 3)": Variant(
        lambda ns: {"Attention": make_attention_heads_first(ns["Attention"])}, "test_mhsa"),
    "Attention: heads merged without transpose": Variant(
        lambda ns: {"Attention": make_attention_no_merge_transpose(ns["Attention"])}, "test_mhsa"),
    "Attention: no output projection": Variant(lambda ns: {"Attention": make_attention_no_proj(ns["Attention"])},
                                               "test_mhsa"),
    "Attention: qkv_bias ignored": Variant(lambda ns: {"Attention": make_attention_always_bias(ns["Attention"])},
                                           "test_mhsa"),
    "Attention: scaled by the full width": Variant(
        lambda ns: {"Attention": make_attention_width_scale(ns["Attention"])}, "test_mhsa"),
    "Attention: heads split by reshape": Variant(
        lambda ns: {"Attention": make_attention_heads_by_reshape(ns["Attention"])}, "test_mhsa"),
    "Block: post-norm": Variant(lambda ns: {"Block": make_post_norm(ns["Block"])}, "test_block"),
    "Block: no residual around the MLP": Variant(
        lambda ns: {"Block": make_block_without_mlp_residual(ns["Block"])}, "test_block"),
    "Block: one LayerNorm for both branches": Variant(lambda ns: {"Block": make_block_shared_norm(ns["Block"])},
                                                      "test_block"),
    "Block: LayerNorm eps 1e-5": Variant(lambda ns: {"Block": make_block_default_eps(ns["Block"])}, "test_block"),
    "Mlp: tanh-approximate GELU": Variant(lambda ns: {"Mlp": make_mlp_activation(ns["Mlp"], nn.GELU("tanh"))},
                                          "test_block"),
    "Mlp: ReLU": Variant(lambda ns: {"Mlp": make_mlp_activation(ns["Mlp"], nn.ReLU())}, "test_block"),
    "Mlp: dropout (right only in eval mode)": Variant(lambda ns: {"Mlp": make_mlp_dropout(ns["Mlp"])}, "test_block"),
    "Block: mlp_ratio ignored": Variant(lambda ns: {"Block": make_block_ratio_four(ns)}, "test_block"),
    "Block: qkv_bias not passed on": Variant(lambda ns: {"Block": make_block_bias_dropped(ns)}, "test_block"),
    "Block: residual from the normalised tokens": Variant(
        lambda ns: {"Block": make_block_residual_after_norm(ns["Block"])}, "test_block"),
    "ViT: position embedding not covering CLS": Variant(
        lambda ns: {"ViT": make_vit_pos_without_cls(ns["ViT"])}, "test_vit"),
    "ViT: mean of all tokens instead of CLS": Variant(lambda ns: {"ViT": make_vit_mean_head(ns["ViT"])}, "test_vit"),
    "ViT: one block repeated depth times": Variant(lambda ns: {"ViT": make_vit_repeated_block(ns["ViT"])}, "test_vit"),
    "ViT: final norm in forward": Variant(lambda ns: {"ViT": make_vit_norm_in_forward(ns["ViT"])}, "test_vit"),
    "ViT: blocks in a Python list": Variant(lambda ns: {"ViT": make_vit_python_list(ns["ViT"])}, "test_vit"),
    "ViT: final LayerNorm eps 1e-5": Variant(lambda ns: {"ViT": make_vit_default_eps(ns["ViT"])}, "test_vit"),
    "ViT: class token after the patches": Variant(lambda ns: {"ViT": make_vit_cls_last(ns["ViT"])}, "test_vit"),
    "ViT: class token built on the CPU": Variant(lambda ns: {"ViT": make_vit_cpu_cls(ns["ViT"])}, "test_vit"),
    "ViT: blocks' outputs discarded": Variant(lambda ns: {"ViT": make_vit_blocks_discarded(ns["ViT"])},
                                              "test_vit", "test_overfit"),
    "ViT: zero-initialised tokens": Variant(lambda ns: {"ViT": make_vit_zero_tokens(ns["ViT"])}, "test_vit"),
    "ViT: mlp_ratio not passed on": Variant(lambda ns: {"ViT": make_vit_ratio_dropped(ns)}, "test_vit"),
}
