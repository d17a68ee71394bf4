"""The chapters' experiments, shared by the notebooks, the reading pages and ``benchmarks/``.

One module per chapter that trains something beyond a plain ``vitcourse.train.fit`` call:
``deit`` (4: a CNN teacher and a distilled ViT on the digits), ``dino`` (5: self-distillation
without labels, collapse diagnostics, a few-shot nearest-neighbour probe), ``mae`` (6: pre-training
and a linear probe), ``registers`` (8: the two-digit canvas task and its token measurements).
Functions that train take the chapter's pieces as arguments, so a notebook can run them with the
student's own implementation.
"""
