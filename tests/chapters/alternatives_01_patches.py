"""Chapter 1 (patches): different but correct answers, each of which must keep full marks, and the ALTERNATIVES dict."""


import einops
import torch

from nbexec import Variant

# Different but correct answers: each must keep full marks -------------------------------------------

def patchify_unfold(images, patch_size):
    """F.unfold reads patches channel-major: reorder each patch to (row, column, channel)."""
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError(f"image {H}x{W} is not a multiple of patch size {patch_size}")
    cols = torch.nn.functional.unfold(images, kernel_size=patch_size, stride=patch_size)  # (B, C*P*P, N)
    cols = cols.reshape(B, C, patch_size, patch_size, -1).permute(0, 4, 2, 3, 1)
    return cols.reshape(B, cols.shape[1], -1)


def patchify_einops(images, patch_size):
    H, W = images.shape[-2:]
    if H % patch_size or W % patch_size:
        raise ValueError(f"{H}x{W} images cannot be cut into {patch_size}x{patch_size} patches")
    return einops.rearrange(images, "b c (h p) (w q) -> b (h w) (p q c)", p=patch_size, q=patch_size)


def patchify_loop(images, patch_size):
    """A loop over the grid, stacking the flattened patches (no new tensor on a fixed device)."""
    B, C, H, W = images.shape
    P = patch_size
    for name, size in (("height", H), ("width", W)):
        if size % P:
            raise ValueError(f"the image {name} {size} must be a multiple of the patch size {P}")
    rows = [images[:, :, i:i + P, j:j + P].permute(0, 2, 3, 1).reshape(B, -1)
            for i in range(0, H, P) for j in range(0, W, P)]
    return torch.stack(rows, dim=1)


def patchify_tensor_unfold(images, patch_size):
    """Tensor.unfold over height then width: (B, C, h, w, P, P) -> (B, h, w, P, P, C)."""
    B, C, H, W = images.shape
    P = patch_size
    if H % P != 0 or W % P != 0:
        raise ValueError(f"image size ({H}, {W}) is not divisible by patch size {P}")
    x = images.unfold(2, P, P).unfold(3, P, P)
    return x.permute(0, 2, 3, 4, 5, 1).reshape(B, -1, P * P * C)


def unpatchify_einops(patches, patch_size, img_size):
    H, W = (img_size, img_size) if isinstance(img_size, int) else img_size
    P = patch_size
    return einops.rearrange(patches, "b (h w) (p q c) -> b c (h p) (w q)", h=H // P, p=P, q=P)


def unpatchify_fold(patches, patch_size, img_size):
    """F.fold puts non-overlapping patches back: reorder each to (channel, row, column) first."""
    H, W = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    B, N, D = patches.shape
    P = patch_size
    C = D // (P * P)
    cols = patches.reshape(B, N, P, P, C).permute(0, 4, 2, 3, 1).reshape(B, C * P * P, N)
    return torch.nn.functional.fold(cols, output_size=(H, W), kernel_size=P, stride=P)


def make_patch_embed_einops(solution_cls):
    class PatchEmbedEinops(solution_cls):
        def forward(self, x):
            H, W = x.shape[-2:]
            if H % self.patch_size or W % self.patch_size:
                raise ValueError(f"{H}x{W} is not a multiple of the patch size {self.patch_size}")
            return einops.rearrange(self.proj(x), "b d h w -> b (h w) d")

    return PatchEmbedEinops


def make_patch_embed_permute(solution_cls):
    class PatchEmbedPermute(solution_cls):
        def forward(self, x):
            B, _, H, W = x.shape
            P = self.patch_size
            if H % P or W % P:
                raise ValueError(f"image {H}x{W}: both sides must be multiples of {P}")
            out = self.proj(x)  # (B, D, h, w)
            return out.permute(0, 2, 3, 1).reshape(B, -1, out.shape[1])

    return PatchEmbedPermute


def conv_weight_einops(weight):
    return einops.rearrange(weight, "d c p q -> d (p q c)")


def conv_weight_movedim(weight):
    return weight.movedim(1, -1).flatten(1)


def linear_to_conv_einops(E, patch_size):
    return einops.rearrange(E, "(p q c) d -> d c p q", p=patch_size, q=patch_size)


def linear_to_conv_by_unflatten(E, patch_size):
    """unflatten the rows, then move the axes: (P*P*C, D) -> (P, P, C, D) -> (D, C, P, P)."""
    return E.unflatten(0, (patch_size, patch_size, -1)).permute(3, 2, 0, 1).contiguous()


def conv_weight_by_transposes(weight):
    """Two transposes instead of one permute, then flatten."""
    return weight.transpose(1, 2).transpose(2, 3).flatten(1)


def vit_macs_by_parts(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000, in_chans=3,
                      class_token=True):
    """Sums a table of parts, one block at a time."""
    grid = img_size // patch_size
    tokens = grid * grid + (1 if class_token else 0)
    hidden = int(embed_dim * mlp_ratio)
    total = grid * grid * (patch_size * patch_size * in_chans) * embed_dim
    for _ in range(depth):
        total += tokens * embed_dim * 3 * embed_dim        # q, k, v
        total += 2 * tokens * tokens * embed_dim           # scores and weighted sum
        total += tokens * embed_dim * embed_dim            # output projection
        total += tokens * embed_dim * hidden * 2           # MLP
    return total + embed_dim * num_classes


ALTERNATIVES = {
    "patchify with F.unfold": Variant({"patchify": patchify_unfold}, "test_patchify"),
    # the cells that call patchify: points were lost where einops was not installed
    "patchify with einops": Variant({"patchify": patchify_einops}, "test_patchify", "test_unpatchify",
                                    "test_conv_as_linear"),
    "patchify with a loop and torch.stack": Variant({"patchify": patchify_loop}, "test_patchify"),
    "patchify with Tensor.unfold": Variant({"patchify": patchify_tensor_unfold}, "test_patchify"),
    "unpatchify with einops": Variant({"unpatchify": unpatchify_einops}, "test_unpatchify"),
    "unpatchify with F.fold": Variant({"unpatchify": unpatchify_fold}, "test_unpatchify"),
    "PatchEmbed with einops": Variant(lambda ns: {"PatchEmbed": make_patch_embed_einops(ns["PatchEmbed"])},
                                      "test_patch_embed", "test_conv_as_linear"),
    "PatchEmbed with permute and reshape": Variant(
        lambda ns: {"PatchEmbed": make_patch_embed_permute(ns["PatchEmbed"])},
        "test_patch_embed", "test_conv_as_linear"),
    "conv_weight_to_linear with einops": Variant({"conv_weight_to_linear": conv_weight_einops},
                                                 "test_conv_as_linear"),
    "conv_weight_to_linear with movedim": Variant({"conv_weight_to_linear": conv_weight_movedim},
                                                  "test_conv_as_linear"),
    "conv_weight_to_linear with two transposes": Variant({"conv_weight_to_linear": conv_weight_by_transposes},
                                                         "test_conv_as_linear"),
    "linear_to_conv_weight with einops": Variant({"linear_to_conv_weight": linear_to_conv_einops},
                                                 "test_conv_as_linear"),
    "linear_to_conv_weight with unflatten": Variant({"linear_to_conv_weight": linear_to_conv_by_unflatten},
                                                    "test_conv_as_linear"),
    "vit_macs part by part, block by block": Variant({"vit_macs": vit_macs_by_parts}, "test_vit_macs"),
}
