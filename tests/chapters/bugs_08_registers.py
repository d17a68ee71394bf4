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


def shares_first_head(attn, num_registers, ink):
    row = attn[:, 0, 0]  # the first head only
    patches = row[:, 1 + num_registers:]
    return torch.stack([row[:, 0], row[:, 1:1 + num_registers].sum(-1), (patches * ink).sum(-1),
                        (patches * ~ink).sum(-1)], -1)


def shares_column(attn, num_registers, ink):
    """Column 0: how much each token attends TO the class token."""
    col = attn.mean(1)[:, :, 0]
    patches = col[:, 1 + num_registers:]
    return torch.stack([col[:, 0], col[:, 1:1 + num_registers].sum(-1), (patches * ink).sum(-1),
                        (patches * ~ink).sum(-1)], -1)


def shares_swapped(attn, num_registers, ink):
    row = attn.mean(1)[:, 0]
    patches = row[:, 1 + num_registers:]
    return torch.stack([row[:, 0], row[:, 1:1 + num_registers].sum(-1), (patches * ~ink).sum(-1),
                        (patches * ink).sum(-1)], -1)


def shares_registers_as_patches(attn, num_registers, ink):
    """num_registers ignored: patches taken from column 1, so the registers count as patches."""
    row = attn.mean(1)[:, 0]
    patches = row[:, -ink.shape[1]:]
    return torch.stack([row[:, 0], torch.zeros_like(row[:, 0]), (patches * ink).sum(-1), (patches * ~ink).sum(-1)], -1)


def shares_zeros_on_cpu(attn, num_registers, ink):
    """Without registers, their share built with torch.zeros on the CPU."""
    row = attn.mean(1)[:, 0]
    patches = row[:, 1 + num_registers:]
    regs = row[:, 1:1 + num_registers].sum(-1) if num_registers else torch.zeros(row.shape[0], dtype=row.dtype)
    return torch.stack([row[:, 0], regs, (patches * ink).sum(-1), (patches * ~ink).sum(-1)], -1)


def shares_float32(attn, num_registers, ink):
    """Everything turned into float32 with .float(), the masks included: float64 weights come back float32."""
    row = attn.mean(1)[:, 0].float()
    patches = row[:, 1 + num_registers:]
    return torch.stack([row[:, 0], row[:, 1:1 + num_registers].sum(-1), (patches * ink.float()).sum(-1),
                        (patches * (~ink).float()).sum(-1)], -1)


def _seen(check: str, hint: str) -> dict:
    return {"check": check, "hint": hint}


ADD = "test_add_prefix_tokens"
BUGS = {
    "registers placed after the patches": Variant({"add_prefix_tokens": prefix_registers_after_patches}, ADD,
                                                  "test_register_vit",
                                                  **_seen(ADD, "putting the registers after the patches")),
    "position embedding added to registers (DINOv2 convention)": Variant(
        {"add_prefix_tokens": prefix_position_on_registers}, ADD, "test_register_vit",
        **_seen(ADD, "adding position embeddings to the registers")),
    "registers never enter the sequence": Variant(
        {"add_prefix_tokens": prefix_registers_dropped}, ADD, "test_register_vit",
        **_seen(ADD, "a token (class, distillation, register) or a row too many or too few")),
    "prefix tokens not expanded over the batch": Variant({"add_prefix_tokens": prefix_not_expanded}, ADD,
                                                         **_seen(ADD, "the expand of a token")),
    "empty registers made on the CPU": Variant({"add_prefix_tokens": prefix_empty_registers_on_cpu}, ADD,
                                               **_seen(ADD, "leave the registers out")),
    "no_embed_class=False: prefix gets no position": Variant({"add_prefix_tokens": prefix_position_on_patches_only},
                                                             ADD, "test_register_vit",
                                                             **_seen(ADD, "adding position embeddings to the patches only")),
    "split_tokens off by one": Variant({"split_tokens": split_off_by_one}, "test_split_pool",
                                       **_seen("test_split_pool", "the registers are tokens 1 to num_registers")),
    "split_tokens with 4 registers written in": Variant({"split_tokens": split_four_registers}, "test_split_pool",
                                                        **_seen("test_split_pool", "tokens[:, 1:1 + num_registers]")),
    "split_tokens keeps cls as (B, 1, D)": Variant({"split_tokens": split_cls_kept_2d}, "test_split_pool",
                                                   **_seen("test_split_pool", "tokens[:, :1] would keep a token dimension")),
    "registers left in the pooled output": Variant({"pool": make_pool_with_registers(None)}, "test_split_pool",
                                                   "test_register_vit",
                                                   **_seen("test_split_pool", "averaging the registers with the patches")),
    "pool: unknown mode averages": Variant({"pool": pool_unknown_is_mean}, "test_split_pool",
                                           **_seen("test_split_pool", "raise a ValueError")),
    "RegisterViT: tokens left at zero": Variant(vit_variant(init="zeros"), "test_register_vit",
                                                **_seen("test_register_vit", "trunc_normal_")),
    "RegisterViT: one register repeated R times": Variant(vit_variant(init="one register repeated"), "test_register_vit",
                                                          **_seen("test_register_vit", "two registers start out equal")),
    "RegisterViT: cls and pos_embed from randn": Variant(vit_variant(init="randn"), "test_register_vit",
                                                         **_seen("test_register_vit", "not about 0.02")),
    "RegisterViT: always 4 registers": Variant(vit_variant(init="four registers"), "test_register_vit",
                                               **_seen("test_register_vit", "use num_registers, not a fixed count")),
    "RegisterViT: final norm in forward, not forward_features": Variant(
        vit_variant(norm_in_forward=True), "test_register_vit",
        **_seen("test_register_vit", "leaving the final norm out of forward_features")),
    "RegisterViT: empty registers made on the CPU": Variant(vit_variant(cpu_registers=True), "test_register_vit",
                                                            **_seen("test_register_vit", "leave the missing registers out")),
    "RegisterViT: pooling skips the class token only": Variant(vit_variant(pool_one_prefix=True), "test_register_vit",
                                                               **_seen("test_register_vit", "pooling over the registers")),
    "artifact threshold from mean and standard deviation": Variant(
        {"find_artifact_tokens": artifacts_mean_std}, "test_find_artifact_tokens",
        **_seen("test_find_artifact_tokens", "drag a mean and a standard deviation along")),
    "MAD without the 1.4826 factor": Variant({"find_artifact_tokens": artifacts_without_consistency_constant},
                                             "test_find_artifact_tokens",
                                             **_seen("test_find_artifact_tokens", "without the factor 1.4826")),
    "low-norm tokens flagged": Variant({"find_artifact_tokens": artifacts_below_threshold}, "test_find_artifact_tokens",
                                       **_seen("test_find_artifact_tokens", "flag only norms ABOVE")),
    "a cut-off per image": Variant({"find_artifact_tokens": artifacts_per_image}, "test_find_artifact_tokens",
                                   **_seen("test_find_artifact_tokens", "not per image")),
    "k ignored": Variant({"find_artifact_tokens": artifacts_fixed_k}, "test_find_artifact_tokens",
                         **_seen("test_find_artifact_tokens", "use the argument k")),
    "mask of floats": Variant({"find_artifact_tokens": artifacts_float_mask}, "test_find_artifact_tokens",
                              **_seen("test_find_artifact_tokens", "gives bools")),
    "explicit threshold ignored": Variant({"find_artifact_tokens": artifacts_threshold_ignored},
                                          "test_find_artifact_tokens",
                                          **_seen("test_find_artifact_tokens", "use a threshold when one is given")),
    "attention_shares: first head only": Variant({"attention_shares": shares_first_head}, "test_attention_shares",
                                                 **_seen("test_attention_shares", "taking the first head")),
    "attention_shares: column 0 instead of row 0": Variant({"attention_shares": shares_column}, "test_attention_shares",
                                                           **_seen("test_attention_shares", "reading column 0")),
    "attention_shares: ink and background swapped": Variant({"attention_shares": shares_swapped},
                                                            "test_attention_shares",
                                                            **_seen("test_attention_shares", "swapping ink and background")),
    "attention_shares: registers counted as patches": Variant({"attention_shares": shares_registers_as_patches},
                                                              "test_attention_shares",
                                                              **_seen("test_attention_shares", "registers are columns 1 .. R")),
    "attention_shares: zeros made on the CPU": Variant({"attention_shares": shares_zeros_on_cpu},
                                                       "test_attention_shares",
                                                       **_seen("test_attention_shares", "not from torch.zeros")),
    "attention_shares: float64 weights returned as float32": Variant({"attention_shares": shares_float32},
                                                                     "test_attention_shares",
                                                                     **_seen("test_attention_shares", "keep the dtype")),
}
