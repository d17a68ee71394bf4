"""Reference implementations of every graded piece of the course.

One module per chapter, named in the chapter's notebook (``patches`` for chapter 1, ``vit`` for
chapter 3, ...). Import what you need, e.g. ``from vitcourse.models.vit import ViT``.
"""
