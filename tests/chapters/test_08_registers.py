"""Chapter 8 graded tests, checked both ways.

The solution passes every graded cell on 10 seeds; each plausible bug below fails the cell meant to
catch it.
"""

import torch

from nbexec import Variant
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/08-registers/08-registers.ipynb"


# Plausible student bugs ------------------------------------------------------------------------

def prefix_registers_after_patches(patch_tokens, pos_embed, cls_token, reg_token, no_embed_class=True):
    B = patch_tokens.shape[0]
    regs = [reg_token.expand(B, -1, -1)] if reg_token is not None else []
    if no_embed_class:
        return torch.cat([cls_token.expand(B, -1, -1), patch_tokens + pos_embed] + regs, 1)
    x = torch.cat([cls_token.expand(B, -1, -1), patch_tokens], 1) + pos_embed[:, : 1 + patch_tokens.shape[1]]
    return torch.cat([x] + regs, 1)


def prefix_position_on_registers(patch_tokens, pos_embed, cls_token, reg_token, no_embed_class=True):
    """DINOv2 convention broken: the registers get (the first rows of) the position embedding too."""
    B = patch_tokens.shape[0]
    prefix = [cls_token.expand(B, -1, -1)]
    if reg_token is not None:
        R = reg_token.shape[1]
        prefix.append((reg_token + pos_embed[:, :R] if no_embed_class else reg_token).expand(B, -1, -1))
    if no_embed_class:
        return torch.cat(prefix + [patch_tokens + pos_embed], 1)
    return torch.cat(prefix + [patch_tokens], 1) + pos_embed  # only the DINOv2 branch is wrong


def prefix_registers_dropped(patch_tokens, pos_embed, cls_token, reg_token, no_embed_class=True):
    """The registers are created but never enter the sequence."""
    B = patch_tokens.shape[0]
    if no_embed_class:
        return torch.cat([cls_token.expand(B, -1, -1), patch_tokens + pos_embed], 1)
    R = 0 if reg_token is None else reg_token.shape[1]
    return torch.cat([cls_token.expand(B, -1, -1) + pos_embed[:, :1], patch_tokens + pos_embed[:, 1 + R:]], 1)


def split_off_by_one(tokens, num_registers):
    return tokens[:, 0], tokens[:, 1:num_registers], tokens[:, num_registers:]


def make_pool_with_registers(split):
    def pool_with_registers(tokens, global_pool="token", num_prefix_tokens=1):
        """Averages everything after the class token: registers included."""
        return tokens[:, 0] if global_pool == "token" else tokens[:, 1:].mean(1)

    return pool_with_registers


def artifacts_mean_std(features, threshold=None, k=6.0):
    norms = features.norm(dim=-1) if features.ndim == 3 else features
    if threshold is None:
        threshold = norms.mean() + k * norms.std()
    return norms > threshold


def artifacts_without_consistency_constant(features, threshold=None, k=6.0):
    norms = features.norm(dim=-1) if features.ndim == 3 else features
    if threshold is None:
        med = norms.flatten().median()
        threshold = med + k * (norms.flatten() - med).abs().median()
    return norms > threshold


def artifacts_below_threshold(features, threshold=None, k=6.0):
    """Flags the low-norm tokens (comparison the wrong way round)."""
    norms = features.norm(dim=-1) if features.ndim == 3 else features
    if threshold is None:
        med = norms.flatten().median()
        threshold = med - k * 1.4826 * (norms.flatten() - med).abs().median()
    return norms < threshold


BUGS = {
    "registers placed after the patches": Variant({"add_prefix_tokens": prefix_registers_after_patches}, "test_add_prefix_tokens", "test_register_vit"),
    "position embedding added to registers (DINOv2 convention)": Variant({"add_prefix_tokens": prefix_position_on_registers}, "test_add_prefix_tokens", "test_register_vit"),
    "registers never enter the sequence": Variant({"add_prefix_tokens": prefix_registers_dropped}, "test_add_prefix_tokens", "test_register_vit", "test_token_accounting", "test_register_gradients"),
    "split_tokens off by one": Variant({"split_tokens": split_off_by_one}, "test_split_pool"),
    "registers left in the pooled output": Variant({"pool": make_pool_with_registers(None)}, "test_split_pool", "test_register_gradients"),
    "artifact threshold from mean and standard deviation": Variant({"find_artifact_tokens": artifacts_mean_std}, "test_find_artifact_tokens"),
    "MAD without the 1.4826 factor": Variant({"find_artifact_tokens": artifacts_without_consistency_constant}, "test_find_artifact_tokens"),
    "low-norm tokens flagged": Variant({"find_artifact_tokens": artifacts_below_threshold}, "test_find_artifact_tokens"),
}



def test_reference_agrees_with_the_solution(run):
    from vitcourse.models import registers as ref

    g = torch.Generator().manual_seed(0)
    f = torch.randn(4, 50, 16, generator=g)
    f[0, 3] *= 5
    assert torch.equal(run.namespace["find_artifact_tokens"](f), ref.find_artifact_tokens(f))
