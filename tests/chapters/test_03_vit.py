"""Chapter 3 graded tests, checked both ways: the solution passes on 10 seeds, each bug is caught."""

import math

import torch

from nbexec import Variant
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/03-vit/03-vit.ipynb"


def attention_unscaled(q, k, v):
    w = (q @ k.transpose(-2, -1)).softmax(dim=-1)
    return w @ v, w


def attention_wrong_axis(q, k, v):
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-2)
    return w @ v, w


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


def attention_ref(q, k, v):
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    return w @ v, w


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


BUGS = {
    "attention: no 1/sqrt(d)": Variant({"attention": attention_unscaled}, "test_attention"),
    "attention: softmax over queries": Variant({"attention": attention_wrong_axis}, "test_attention"),
    "Attention: qkv split as (heads, 3)": Variant(
        lambda ns: {"Attention": make_attention_heads_first(ns["Attention"])}, "test_mhsa"),
    "Block: post-norm": Variant(lambda ns: {"Block": make_post_norm(ns["Block"])}, "test_block"),
    "Block: no residual around the MLP": Variant(
        lambda ns: {"Block": make_block_without_mlp_residual(ns["Block"])}, "test_block"),
    "ViT: position embedding not covering CLS": Variant(
        lambda ns: {"ViT": make_vit_pos_without_cls(ns["ViT"])}, "test_vit"),
    "ViT: mean of all tokens instead of CLS": Variant(lambda ns: {"ViT": make_vit_mean_head(ns["ViT"])}, "test_vit"),
}
