"""Reference implementations of every graded piece of the course.

One module per chapter: ``patches`` (1), ``position`` (2), ``vit`` (3, also DeiT and registers),
``deit`` (4), ``dino`` (5), ``mae`` (6), ``swin`` (7), ``registers`` (8), ``vlm`` and
``vlm_train`` (9).
Import what you need, e.g. ``from vitcourse.models.vit import ViT``.
"""
