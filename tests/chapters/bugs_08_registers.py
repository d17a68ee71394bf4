"""Chapter 8 (registers): plausible student bugs, each of which must lose points, and the BUGS dict."""

import torch

from nbexec import Variant

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


def prefix_not_expanded(patch_tokens, pos_embed, cls_token, reg_token, no_embed_class=True):
    """cls and registers concatenated as they are, (1, n, D): fine for one image only."""
    prefix = [cls_token] + ([reg_token] if reg_token is not None else [])
    if no_embed_class:
        return torch.cat(prefix + [patch_tokens + pos_embed], 1)
    return torch.cat(prefix + [patch_tokens], 1) + pos_embed


def prefix_empty_registers_on_cpu(patch_tokens, pos_embed, cls_token, reg_token, no_embed_class=True):
    """No registers: an empty (1, 0, D) tensor made with torch.zeros, on the CPU."""
    B, N, D = patch_tokens.shape
    regs = reg_token if reg_token is not None else torch.zeros(1, 0, D)
    prefix = [cls_token.expand(B, -1, -1), regs.expand(B, -1, -1)]
    if no_embed_class:
        return torch.cat(prefix + [patch_tokens + pos_embed], 1)
    return torch.cat(prefix + [patch_tokens], 1) + pos_embed


def prefix_position_on_patches_only(patch_tokens, pos_embed, cls_token, reg_token, no_embed_class=True):
    """no_embed_class=False read as "patches only" too: the prefix rows of pos_embed are never added."""
    B, N, _ = patch_tokens.shape
    prefix = [cls_token.expand(B, -1, -1)] + ([reg_token.expand(B, -1, -1)] if reg_token is not None else [])
    return torch.cat(prefix + [patch_tokens + pos_embed[:, -N:]], 1)


def split_four_registers(tokens, num_registers):
    """The registers of the visible check (4), whatever num_registers says."""
    return tokens[:, 0], tokens[:, 1:5], tokens[:, 5:]


def split_cls_kept_2d(tokens, num_registers):
    return tokens[:, :1], tokens[:, 1:1 + num_registers], tokens[:, 1 + num_registers:]


def pool_unknown_is_mean(tokens, global_pool="token", num_prefix_tokens=1):
    """Any mode other than "token" averages: "max" or a typo passes silently."""
    return tokens[:, 0] if global_pool == "token" else tokens[:, num_prefix_tokens:].mean(1)


def artifacts_per_image(features, threshold=None, k=6.0):
    """Median and MAD of each image: a cut-off per image, not one for the model."""
    norms = features.norm(dim=-1) if features.ndim == 3 else features
    if threshold is None:
        med = norms.median(dim=1, keepdim=True).values
        mad = (norms - med).abs().median(dim=1, keepdim=True).values
        threshold = med + k * 1.4826 * mad
    return norms > threshold


def artifacts_fixed_k(features, threshold=None, k=6.0):
    """k = 6 written into the formula: the argument is ignored."""
    norms = features.norm(dim=-1) if features.ndim == 3 else features
    if threshold is None:
        med = norms.flatten().median()
        threshold = med + 6 * 1.4826 * (norms.flatten() - med).abs().median()
    return norms > threshold


def artifacts_float_mask(features, threshold=None, k=6.0):
    norms = features.norm(dim=-1) if features.ndim == 3 else features
    if threshold is None:
        med = norms.flatten().median()
        threshold = med + k * 1.4826 * (norms.flatten() - med).abs().median()
    return (norms > threshold).float()


def artifacts_threshold_ignored(features, threshold=None, k=6.0):
    """Always the robust threshold, even when one is given."""
    norms = features.norm(dim=-1) if features.ndim == 3 else features
    med = norms.flatten().median()
    return norms > med + k * 1.4826 * (norms.flatten() - med).abs().median()


def vit_variant(**changes):
    """RegisterViT of the solution with a student's change to __init__ or forward (see below)."""

    def replace(ns):
        base = ns["RegisterViT"]
        add_prefix_tokens, pool = ns["add_prefix_tokens"], ns["pool"]

        class RegisterViT(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                init = changes.get("init")
                with torch.no_grad():
                    if init == "zeros":  # the parameters created, the trunc_normal_ line forgotten
                        for name in ("cls_token", "reg_token", "pos_embed"):
                            if getattr(self, name) is not None:
                                setattr(self, name, torch.nn.Parameter(torch.zeros_like(getattr(self, name))))
                    elif init == "one register repeated" and self.reg_token is not None:
                        one = torch.nn.init.trunc_normal_(torch.empty(1, 1, self.reg_token.shape[-1]), std=0.02)
                        self.reg_token = torch.nn.Parameter(one.repeat(1, self.num_registers, 1))
                    elif init == "randn":
                        self.cls_token = torch.nn.Parameter(torch.randn_like(self.cls_token))
                        self.pos_embed = torch.nn.Parameter(torch.randn_like(self.pos_embed))
                    elif init == "four registers" and self.reg_token is not None:
                        D = self.reg_token.shape[-1]
                        self.reg_token = torch.nn.Parameter(torch.nn.init.trunc_normal_(torch.empty(1, 4, D), std=0.02))

            def forward_features(self, x):
                tokens = self.patch_embed(x)
                regs = self.reg_token
                if changes.get("cpu_registers") and regs is None:
                    regs = torch.zeros(1, 0, tokens.shape[-1])
                x = self.blocks(add_prefix_tokens(tokens, self.pos_embed, self.cls_token, regs, self.no_embed_class))
                return x if changes.get("norm_in_forward") else self.norm(x)

            def forward(self, x):
                x = self.forward_features(x)
                if changes.get("norm_in_forward"):
                    x = self.norm(x)
                prefix = 1 if changes.get("pool_one_prefix") else 1 + self.num_registers
                return self.head(pool(x, self.global_pool, prefix))

        return {"RegisterViT": RegisterViT}

    return replace


BUGS = {
    "registers placed after the patches": Variant({"add_prefix_tokens": prefix_registers_after_patches},
                                                  "test_add_prefix_tokens", "test_register_vit"),
    "position embedding added to registers (DINOv2 convention)": Variant(
        {"add_prefix_tokens": prefix_position_on_registers}, "test_add_prefix_tokens", "test_register_vit"),
    "registers never enter the sequence": Variant(
        {"add_prefix_tokens": prefix_registers_dropped}, "test_add_prefix_tokens", "test_register_vit",
        "test_token_accounting", "test_register_gradients"),
    "prefix tokens not expanded over the batch": Variant({"add_prefix_tokens": prefix_not_expanded},
                                                         "test_add_prefix_tokens"),
    "empty registers made on the CPU": Variant({"add_prefix_tokens": prefix_empty_registers_on_cpu},
                                               "test_add_prefix_tokens"),
    "no_embed_class=False: prefix gets no position": Variant({"add_prefix_tokens": prefix_position_on_patches_only},
                                                             "test_add_prefix_tokens", "test_register_vit"),
    "split_tokens off by one": Variant({"split_tokens": split_off_by_one}, "test_split_pool"),
    "split_tokens with 4 registers written in": Variant({"split_tokens": split_four_registers}, "test_split_pool"),
    "split_tokens keeps cls as (B, 1, D)": Variant({"split_tokens": split_cls_kept_2d}, "test_split_pool"),
    "registers left in the pooled output": Variant({"pool": make_pool_with_registers(None)}, "test_split_pool",
                                                   "test_register_gradients"),
    "pool: unknown mode averages": Variant({"pool": pool_unknown_is_mean}, "test_split_pool"),
    "RegisterViT: tokens left at zero": Variant(vit_variant(init="zeros"), "test_register_vit",
                                                "test_register_gradients"),
    "RegisterViT: one register repeated R times": Variant(vit_variant(init="one register repeated"),
                                                          "test_register_vit", "test_register_gradients"),
    "RegisterViT: cls and pos_embed from randn": Variant(vit_variant(init="randn"), "test_register_vit"),
    "RegisterViT: always 4 registers": Variant(vit_variant(init="four registers"), "test_register_vit"),
    "RegisterViT: final norm in forward, not forward_features": Variant(vit_variant(norm_in_forward=True),
                                                                        "test_register_vit"),
    "RegisterViT: empty registers made on the CPU": Variant(vit_variant(cpu_registers=True), "test_register_vit"),
    "RegisterViT: pooling skips the class token only": Variant(vit_variant(pool_one_prefix=True),
                                                               "test_register_gradients"),
    "artifact threshold from mean and standard deviation": Variant({"find_artifact_tokens": artifacts_mean_std},
                                                                   "test_find_artifact_tokens"),
    "MAD without the 1.4826 factor": Variant({"find_artifact_tokens": artifacts_without_consistency_constant},
                                             "test_find_artifact_tokens"),
    "low-norm tokens flagged": Variant({"find_artifact_tokens": artifacts_below_threshold},
                                       "test_find_artifact_tokens"),
    "a cut-off per image": Variant({"find_artifact_tokens": artifacts_per_image}, "test_find_artifact_tokens"),
    "k ignored": Variant({"find_artifact_tokens": artifacts_fixed_k}, "test_find_artifact_tokens"),
    "mask of floats": Variant({"find_artifact_tokens": artifacts_float_mask}, "test_find_artifact_tokens"),
    "explicit threshold ignored": Variant({"find_artifact_tokens": artifacts_threshold_ignored},
                                          "test_find_artifact_tokens"),
}
