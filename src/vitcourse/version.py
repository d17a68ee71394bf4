"""Which release of the course this library is, and where a notebook installs a release from.

``VERSION`` and ``REPOSITORY`` are written by ``python3.11 tasks.py sync`` from the course registry
(``course.toml``); the rule that turns them into what pip installs is ``install_url``.
"""

VERSION = "0.2.0"
REPOSITORY = "https://github.com/vit-from-scratch/vit-course"


def tag(version: str = VERSION) -> str:
    """The git tag of a release: ``v0.2.0``."""
    return f"v{version}"


def install_url(version: str = VERSION, repository: str = REPOSITORY) -> str:
    """What pip installs for a release: the repository at the release's tag."""
    return f"git+{repository}@{tag(version)}"
