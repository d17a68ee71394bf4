"""Plausible bugs in chapter 3's ViT class, used by the BUGS dict of bugs_03_vit."""

import torch
import torch.nn.functional as F
from torch import nn

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


def make_vit_first_block_only(solution_cls):
    class ViT(solution_cls):
        """Only self.blocks[0] runs: the other blocks exist but are skipped."""

        def forward_features(self, x):
            x = self.patch_embed(x)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
            return self.norm(self.blocks[0](x))

    return ViT


# Plausible student bugs: train_step ------------------------------------------------------------------

def step_without_zero_grad(model, images, labels, optimizer):
    model.train()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_before_backward(model, images, labels, optimizer):
    model.train()
    loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad()
    optimizer.step()
    loss.backward()
    return loss.item()


def step_zero_grad_after_backward(model, images, labels, optimizer):
    """zero_grad between backward and step: the step sees no gradient."""
    model.train()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def step_in_eval_mode(model, images, labels, optimizer):
    """Never calls model.train()."""
    loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_returns_tensor(model, images, labels, optimizer):
    model.train()
    loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def step_softmax_then_cross_entropy(model, images, labels, optimizer):
    """Cross-entropy of softmax probabilities: cross_entropy applies its own log-softmax."""
    model.train()
    loss = F.cross_entropy(model(images).softmax(dim=-1), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_item_before_backward(model, images, labels, optimizer):
    """The loss turned into a float first, then backward called on it."""
    model.train()
    loss = F.cross_entropy(model(images), labels).item()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss
