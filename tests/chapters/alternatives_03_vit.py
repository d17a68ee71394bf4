"""Chapter 3 (ViT): different but correct answers, each of which must keep full marks, and the ALTERNATIVES dict."""

import math

import einops
import torch
import torch.nn.functional as F
from torch import nn

from bugs_03_vit import attention_ref
from nbexec import Variant

# Different but correct answers: each must keep full marks -------------------------------------------

def attention_einsum(q, k, v, mask=None):
    """einsum, and torch.where against a -inf made on the scores' device."""
    scores = torch.einsum("...id,...jd->...ij", q, k) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
    weights = torch.softmax(scores, dim=-1)
    return torch.einsum("...ij,...jd->...id", weights, v), weights


def attention_manual_softmax(q, k, v, mask=None):
    """Softmax by hand, the maximum subtracted first; masked scores set to the dtype's lowest value."""
    scores = (q / math.sqrt(q.size(-1))) @ k.mT
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), torch.finfo(scores.dtype).min)
    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    weights = e / e.sum(dim=-1, keepdim=True)
    return weights @ v, weights


def attention_boolean_index(q, k, v, mask=None):
    """Masked scores written through boolean indexing (which the meta device cannot run)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.clone()
        scores[~mask.expand_as(scores)] = float("-inf")
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


def train_step_criterion(model, images, labels, optimizer):
    """nn.CrossEntropyLoss, model.zero_grad(), float(loss)."""
    model.train(True)
    model.zero_grad(set_to_none=True)
    loss = nn.CrossEntropyLoss()(model(images), labels)
    loss.backward()
    optimizer.step()
    return float(loss)


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
    "attention with boolean indexing": Variant({"attention": attention_boolean_index}, "test_attention", "test_mhsa"),
    "train_step with nn.CrossEntropyLoss and model.zero_grad": Variant({"train_step": train_step_criterion},
                                                                      "test_train_step"),
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
                                                                  "test_vit", "test_train_step"),
}
