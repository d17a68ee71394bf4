"""Models, and the reference implementation of every piece the students write.

One module per chapter, named in the chapter's notebook (``patches`` for chapter 1, ``vit`` for
chapter 3, ...), and ``pooling``, the attention pooling of SigLIP's image tower. Training runs are in
``vitcourse.experiments``, measurements in ``vitcourse.analysis``.
Import what you need, e.g. ``from vitcourse.models.vit import ViT``.
"""
