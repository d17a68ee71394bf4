"""Chapter 3 graded tests, checked both ways: the solution passes on 10 seeds, each bug is caught."""

import math

import pytest
import torch

from nbexec import failed
from solution_checks import test_solution_passes_every_graded_cell, test_solution_passes_on_other_seeds  # noqa: F401

NOTEBOOK = "solutions/03-vit/03-vit.ipynb"


def attention_unscaled(q, k, v):
    w = (q @ k.transpose(-2, -1)).softmax(dim=-1)
    return w @ v, w


def attention_wrong_axis(q, k, v):
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-2)
    return w @ v, w


def make_mhsa_heads_first(solution_cls):
    class MHSA(solution_cls):
        """qkv reshaped as (B, N, heads, 3, head_dim): the right shape, the wrong split."""

        def forward(self, x):
            B, N, D = x.shape
            qkv = self.qkv(x).reshape(B, N, self.num_heads, 3, self.head_dim).permute(3, 0, 2, 1, 4)
            q, k, v = qkv.unbind(0)
            out, self.last_attn = attention_ref(q, k, v)
            return self.proj(out.transpose(1, 2).reshape(B, N, D))

    return MHSA


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
    "attention: no 1/sqrt(d)": ({"attention": attention_unscaled}, {"test_attention"}),
    "attention: softmax over queries": ({"attention": attention_wrong_axis}, {"test_attention"}),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_plausible_bug_is_caught(run, bug):
    overrides, must_fail = BUGS[bug]
    assert must_fail <= failed(run.rerun_tests(overrides=overrides))


@pytest.mark.parametrize("name,make,cls,cell", [
    ("qkv split as (heads, 3)", make_mhsa_heads_first, "MultiHeadSelfAttention", "test_mhsa"),
    ("post-norm block", make_post_norm, "Block", "test_block"),
    ("no residual around the MLP", make_block_without_mlp_residual, "Block", "test_block"),
    ("position embedding not covering CLS", make_vit_pos_without_cls, "ViT", "test_vit"),
    ("mean of all tokens instead of CLS", make_vit_mean_head, "ViT", "test_vit"),
])
def test_plausible_class_bug_is_caught(run, name, make, cls, cell):
    buggy = make(run.namespace[cls])
    assert cell in failed(run.rerun_tests(overrides={cls: buggy}))
