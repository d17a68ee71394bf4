"""vitcourse: the library of the course "Vision Transformers from Scratch".

Reference models (``vitcourse.models``), offline data (``data``), a small training loop (``train``),
figures (``viz``), explorers (``widgets``), FLOP counting (``flops``), weight conversion from timm and
torchvision (``convert``) and the check helpers used by the notebooks (``checks``).
"""

__version__ = "0.1.0"
