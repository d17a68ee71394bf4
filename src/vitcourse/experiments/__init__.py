"""The chapters' experiments, shared by the notebooks, the reading pages and ``benchmarks/``.

One module per chapter that trains something beyond a plain ``vitcourse.train.fit`` call, with the
data it trains on: ``deit`` (4: a CNN teacher and a distilled ViT on the digits), ``dino`` (5:
self-distillation without labels and its collapse diagnostics), ``mae`` (6: pre-training and a linear
probe), ``registers`` (8: the two-digit canvas task and what the chapter measures on it), ``vlm`` (9: a
tiny CLIP on captioned digits). Functions that train take the chapter's pieces as arguments, so a
notebook can run them with the student's own implementation; measurements that apply to any model are
in ``vitcourse.analysis``.
"""
