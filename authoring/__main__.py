"""``python -m authoring STEP [ARGS]``: one entry per step of the authoring pipeline (see ``authoring``).

    sync [--check] [ID ...]      everything derived: registry files, notebooks, the release
    release [--check] [ID ...]   only the release (notebooks/ from solutions/)
    new ID "Title" MODULE        scaffold a chapter
    configure --repository URL   run the course from another repository (then sync)
    layout                       check that every chapter has every part
    pull NOTEBOOK                write back the text source of a solution .ipynb edited in Jupyter
    vendor-assets [--check]      the site's vendored JavaScript
"""

from __future__ import annotations

import importlib
import sys

from authoring import registry

STEPS = {"sync": "sync", "release": "release", "new": "scaffold", "configure": "configure", "layout": "layout",
         "pull": "notebooks", "vendor-assets": "vendor_assets"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in STEPS:
        print(__doc__)
        return 2
    foreign = registry.foreign_library()
    if foreign:
        print(foreign, file=sys.stderr)
        return 1
    module = importlib.import_module(f"authoring.{STEPS[argv[0]]}")
    sys.argv[0] = f"python -m authoring {argv[0]}"  # what argparse names in usage and errors
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
