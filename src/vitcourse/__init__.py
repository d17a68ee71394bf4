"""vitcourse: the library of the course "Vision Transformers from Scratch".

Models and the reference of every piece students write (``vitcourse.models``), the chapters' training
runs (``experiments``), measurements of models (``analysis``), offline data (``data``) and its
augmentation (``augment``), a small training loop (``train``), figures (``viz``, ``diagrams``),
explorers (``widgets``, ``explorer``), cost counting (``flops``), weight conversion from timm,
torchvision and Hugging Face (``convert``) and the check helpers used by the notebooks (``checks``).
"""

from vitcourse.version import VERSION as __version__  # the release (written from the course registry)

__all__ = ["__version__"]
