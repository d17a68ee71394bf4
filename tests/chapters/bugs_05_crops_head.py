"""Plausible bugs in chapter 5's MultiCrop and DINOHead, used by the BUGS dict of bugs_05_dino."""

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2


def head_variant(base, *, no_l2=False, train_g=False):
    class Buggy(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if train_g:
                self.last_layer.parametrizations.weight.original0.requires_grad_(True)

        def forward(self, x):
            x = self.mlp(x)
            return self.last_layer(x if no_l2 else F.normalize(x, dim=-1))

    return Buggy


def dino_head(**flags):
    return lambda ns: {"DINOHead": head_variant(ns["DINOHead"], **flags)}


def multicrop_scales_swapped(ns):
    class Swapped(ns["MultiCrop"]):
        def __init__(self, global_size=224, local_size=96, num_local=8, global_scale=(0.4, 1.0),
                     local_scale=(0.05, 0.4)):
            super().__init__(global_size, local_size, num_local, local_scale, global_scale)

    return {"MultiCrop": Swapped}


class MultiCropVariant:
    """MultiCrop with one mistake: ``flip_p`` (0 never, 1 always), the same global or local crop reused,
    or the scale arguments ignored in favour of the defaults."""

    flip_p, reuse_global, reuse_local, default_scales = 0.5, False, False, False

    def __init__(self, global_size=224, local_size=96, num_local=8, global_scale=(0.4, 1.0), local_scale=(0.05, 0.4)):
        self.global_size, self.local_size, self.num_local = global_size, local_size, num_local
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        if self.default_scales:
            global_scale, local_scale = (0.4, 1.0), (0.05, 0.4)
        flip = [v2.RandomHorizontalFlip(self.flip_p)]
        self.global_crop = v2.Compose([v2.RandomResizedCrop(global_size, scale=global_scale, antialias=True), *flip])
        self.local_crop = v2.Compose([v2.RandomResizedCrop(local_size, scale=local_scale, antialias=True), *flip])

    def __call__(self, image):
        g = self.global_crop(image)
        views = [g, g if self.reuse_global else self.global_crop(image)]
        if self.reuse_local:
            return views + [self.local_crop(image)] * self.num_local
        return views + [self.local_crop(image) for _ in range(self.num_local)]


def multicrop(**flags):
    return {"MultiCrop": type("MultiCrop", (MultiCropVariant,), flags)}


def head_layers(*, bn_after_gelu=False, relu=False, default_init=False, bias=False, normalize_dim0=False):
    """A DINOHead with one mistake in its layers, initialisation or normalisation."""

    class Head(nn.Module):
        def __init__(self, in_dim, out_dim, hidden_dim=2048, bottleneck_dim=256, nlayers=3, norm_last_layer=True,
                     use_bn=False):
            super().__init__()
            act = nn.ReLU if relu else nn.GELU
            if nlayers == 1:
                self.mlp = nn.Linear(in_dim, bottleneck_dim)
            else:
                def hidden(d_in):
                    norm = [nn.BatchNorm1d(hidden_dim)] if use_bn else []
                    return [nn.Linear(d_in, hidden_dim), *(([act()] + norm) if bn_after_gelu else (norm + [act()]))]

                layers = hidden(in_dim)
                for _ in range(nlayers - 2):
                    layers += hidden(hidden_dim)
                self.mlp = nn.Sequential(*layers, nn.Linear(hidden_dim, bottleneck_dim))
            if not default_init:
                for m in self.mlp.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.trunc_normal_(m.weight, std=0.02)
                        nn.init.zeros_(m.bias)
            self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=bias))
            g = self.last_layer.parametrizations.weight.original0
            with torch.no_grad():
                g.fill_(1.0)
            g.requires_grad_(not norm_last_layer)

        def forward(self, x):
            return self.last_layer(F.normalize(self.mlp(x), dim=0 if normalize_dim0 else -1))

    return {"DINOHead": Head}


class MultiCropOneFlip(MultiCropVariant):
    """Flips the image once per call, before cropping: every view of a call shares one flip."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.flip = v2.RandomHorizontalFlip()
        self.global_crop = v2.RandomResizedCrop(self.global_size, scale=self.global_scale, antialias=True)
        self.local_crop = v2.RandomResizedCrop(self.local_size, scale=self.local_scale, antialias=True)

    def __call__(self, image):
        return super().__call__(self.flip(image))
