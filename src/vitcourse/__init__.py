"""vitcourse: the library of the course "Vision Transformers from Scratch".

Reference models (``vitcourse.models``), offline data (``data``), a small training loop (``train``),
figures (``viz``), explorers (``widgets``), FLOP counting (``flops``), weight conversion from timm and
torchvision (``convert``) and the check helpers used by the notebooks (``checks``).
"""

from vitcourse.version import VERSION as __version__  # the release (written from the course registry)

__all__ = ["__version__"]
