"""Plausible bugs in chapter 2's Tokens class, used by the BUGS dict of bugs_02_position."""

import torch
from torch import nn

from vitcourse.models.position import interpolate_pos_embed


def make_tokens_without_cls_position(solution_cls):
    class Tokens(solution_cls):
        """Position embedding only for the patches (N rows): the class token gets none."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pos_embed = nn.Parameter(self.pos_embed.data[:, 1:].clone())

        def forward(self, images):
            x = self.patch_embed(images) + self.pos_embed
            return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)

    return Tokens


def make_tokens_plain_tensor(solution_cls):
    class Tokens(solution_cls):
        """pos_embed kept as a plain tensor: it is never learned (and is not moved by .to())."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pos = self.pos_embed.detach().clone()
            del self.pos_embed
            self.pos_embed = pos

    return Tokens


def make_tokens_zero_init(solution_cls):
    class Tokens(solution_cls):
        """cls_token and pos_embed initialised to zeros instead of torch.randn(...) * 0.02."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            nn.init.zeros_(self.cls_token)
            nn.init.zeros_(self.pos_embed)

    return Tokens


def make_tokens_sliced(solution_cls):
    class Tokens(solution_cls):
        """Other image sizes: the first rows of pos_embed are taken instead of resizing the grid."""

        def forward(self, images):
            x = self.patch_embed(images)
            cls = self.cls_token.expand(x.shape[0], -1, -1)
            return torch.cat([cls, x], dim=1) + self.pos_embed[:, : x.shape[1] + 1]

    return Tokens


def make_tokens_cls_last(solution_cls):
    class Tokens(solution_cls):
        """The class token appended after the patches."""

        def forward(self, images):
            x = self.patch_embed(images)
            return torch.cat([x, self.cls_token.expand(x.shape[0], -1, -1)], dim=1) + self.pos_embed

    return Tokens


def make_tokens_cpu_cls(solution_cls):
    class Tokens(solution_cls):
        """Broadcasts the class token by adding it to zeros made on the CPU (fails on a GPU)."""

        def forward(self, images):
            x = self.patch_embed(images)
            grid = (images.shape[-2] // self.patch_embed.patch_size, images.shape[-1] // self.patch_embed.patch_size)
            pos = self.pos_embed if grid == self.grid else interpolate_pos_embed(self.pos_embed, self.grid, grid, 1)
            cls = torch.zeros(x.shape[0], 1, x.shape[-1]) + self.cls_token
            return torch.cat([cls, x], dim=1) + pos

    return Tokens


def make_tokens_grid_swapped(solution_cls):
    class Tokens(solution_cls):
        """The new grid computed as (W // P, H // P)."""

        def forward(self, images):
            x = self.patch_embed(images)
            grid = (images.shape[-1] // self.patch_embed.patch_size, images.shape[-2] // self.patch_embed.patch_size)
            pos = self.pos_embed if grid == self.grid else interpolate_pos_embed(self.pos_embed, self.grid, grid, 1)
            return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos

    return Tokens


def make_tokens_detached_resize(solution_cls):
    class Tokens(solution_cls):
        """Resizes a detached copy of pos_embed: no gradient reaches it at other sizes."""

        def forward(self, images):
            x = self.patch_embed(images)
            grid = (images.shape[-2] // self.patch_embed.patch_size, images.shape[-1] // self.patch_embed.patch_size)
            resized = interpolate_pos_embed(self.pos_embed.data, self.grid, grid, 1)
            pos = self.pos_embed if grid == self.grid else resized
            return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos

    return Tokens


def make_tokens_std_one(solution_cls):
    class Tokens(solution_cls):
        """torch.randn(...) without the * 0.02: positions as large as the patch tokens themselves."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            with torch.no_grad():
                self.cls_token.normal_()
                self.pos_embed.normal_()

    return Tokens


def make_tokens_cls_without_position(solution_cls):
    class Tokens(solution_cls):
        """pos_embed has N + 1 rows, but only the patch rows are added: the class token gets none."""

        def forward(self, images):
            x = self.patch_embed(images)
            grid = (images.shape[-2] // self.patch_embed.patch_size, images.shape[-1] // self.patch_embed.patch_size)
            pos = self.pos_embed if grid == self.grid else interpolate_pos_embed(self.pos_embed, self.grid, grid, 1)
            return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x + pos[:, 1:]], dim=1)

    return Tokens
