"""Plausible bugs in chapter 1's vit_macs, used by the BUGS dict of bugs_01_patches."""


def vit_macs_no_attention(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000,
                          in_chans=3, class_token=True):
    """Forgets the two T^2 D attention products."""
    N = (img_size // patch_size) ** 2
    T, D = N + int(class_token), embed_dim
    block = 4 * T * D * D + 2 * T * D * int(D * mlp_ratio)
    return N * patch_size**2 * in_chans * D + depth * block + D * num_classes


def vit_macs_flops(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000,
                   in_chans=3, class_token=True):
    """Reports FLOPs (2 per MAC) instead of MACs."""
    N = (img_size // patch_size) ** 2
    T, D = N + int(class_token), embed_dim
    block = 4 * T * D * D + 2 * T * T * D + 2 * T * D * int(D * mlp_ratio)
    return 2 * (N * patch_size**2 * in_chans * D + depth * block + D * num_classes)


def vit_macs_rgb(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000, in_chans=3,
                 class_token=True):
    """in_chans ignored: the patch embedding always counted for 3 channels."""
    return vit_macs_reference(img_size, patch_size, embed_dim, depth, mlp_ratio, num_classes, 3, class_token)


def vit_macs_head_per_token(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000,
                            in_chans=3, class_token=True):
    """Counts the head on every token."""
    T = (img_size // patch_size) ** 2 + int(class_token)
    base = vit_macs_reference(img_size, patch_size, embed_dim, depth, mlp_ratio, num_classes, in_chans, class_token)
    return base + (T - 1) * embed_dim * num_classes


def vit_macs_always_cls(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000, in_chans=3,
                        class_token=True):
    """class_token ignored: T = N + 1 always."""
    return vit_macs_reference(img_size, patch_size, embed_dim, depth, mlp_ratio, num_classes, in_chans, True)


def vit_macs_ratio_four(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000, in_chans=3,
                        class_token=True):
    """mlp_ratio ignored: the MLP width is always 4 D."""
    return vit_macs_reference(img_size, patch_size, embed_dim, depth, 4.0, num_classes, in_chans, class_token)


def vit_macs_float(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000, in_chans=3,
                   class_token=True):
    """Right value, as a float: the MLP term multiplied by the float mlp_ratio."""
    N = (img_size // patch_size) ** 2
    T, D = N + int(class_token), embed_dim
    block = 4 * T * D * D + 2 * T * T * D + 2 * T * D * D * mlp_ratio
    return N * patch_size**2 * in_chans * D + depth * block + D * num_classes


def vit_macs_attention_once(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000,
                            in_chans=3, class_token=True):
    """Counts QK^T but not the weighted sum of the values."""
    T = (img_size // patch_size) ** 2 + int(class_token)
    base = vit_macs_reference(img_size, patch_size, embed_dim, depth, mlp_ratio, num_classes, in_chans, class_token)
    return base - depth * T * T * embed_dim


def vit_macs_reference(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000, in_chans=3,
                       class_token=True):
    N = (img_size // patch_size) ** 2
    T, D = N + int(class_token), embed_dim
    block = 4 * T * D * D + 2 * T * T * D + 2 * T * D * int(D * mlp_ratio)
    return N * patch_size**2 * in_chans * D + depth * block + D * num_classes
