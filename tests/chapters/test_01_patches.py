"""Chapter 1's own tests; the checks every chapter runs (tests/chapters/solution_checks.py: the solution on
ten seeds, each plausible bug of bugs_01_patches.py and each alternative of alternatives_01_patches.py,
the student's view) are added by tests/chapters/conftest.py from the registry.

(Running the notebooks in a kernel, nbgrader validate and the release sync are in tests/test_notebooks.py.)
"""

import pytest
import torch


def test_reference_error_names_numbers_and_fixes():
    from vitcourse.models.patches import PatchEmbed, patchify

    for call in (lambda: PatchEmbed(224, 16)(torch.zeros(1, 3, 230, 224)),
                 lambda: patchify(torch.zeros(1, 3, 230, 224), 16)):
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert "230" in message and "16" in message and "resize" in message and "pad" in message
