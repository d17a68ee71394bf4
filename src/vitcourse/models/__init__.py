"""Models, and the reference implementation of every piece the students write.

One module per chapter: ``patches`` (1), ``position`` (2), ``vit`` (3, also DeiT and registers),
``deit`` (4), ``dino`` (5), ``mae`` (6), ``swin`` (7), ``registers`` (8), ``vlm`` (9); ``pooling`` holds
the attention pooling of SigLIP's image tower. Training runs are in ``vitcourse.experiments``,
measurements in ``vitcourse.analysis``.
Import what you need, e.g. ``from vitcourse.models.vit import ViT``.
"""
