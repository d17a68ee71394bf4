"""Chapter 9's own tests; the checks every chapter runs (tests/chapters/solution_checks.py: the solution on
ten seeds, each plausible bug of bugs_09_vlm.py and each alternative of alternatives_09_vlm.py, the
student's view) are added by tests/chapters/conftest.py from the registry.

A second, differently written correct answer for every exercise gets full marks (a test below checks it).

What the training cell (test_two_tower) can and cannot see, measured over seeds 0-9 with its settings
(120 steps, temperature multiplier starting at 3): a CLIP loss that is one-directional still trains
(zero-shot 0.27-0.70 against 0.36-0.72 for the correct loss), so only test_clip_loss catches it; a
loss that divides by the temperature also trains (0.31-0.51) but drives the multiplier down (2.46-2.54
against 2.99-3.29), which the cell's temperature check (>= 2.7) catches; matches off the diagonal
leave the model at chance (0.10).
"""

from alternatives_09_vlm import ALTERNATIVES
from nbexec import failed


def test_every_answer_cell_has_an_alternative(run):
    answers = {c.grade_id for c in run.cells if c.kind == "solution"}
    assert len(answers) == len(ALTERNATIVES) == 7


def test_memorised_visible_answers_fail_the_hidden_part(run):
    """Answers that return the visible checks' values and nothing else pass the visible asserts only."""
    visible_counts = {(1080, 1920, "llava"): 576, (448, 448, "internvl"): 256, (1080, 1920, "internvl"): 2304,
                      (1080, 1920, "internvl", False): 2048, (1080, 1920, "qwen2vl"): 2691, (3024, 4032, "qwen2vl"): 1230,
                      (50, 300, "qwen2vl"): 280}
    visible_grids = {(448, 448, 1, 12, 448): (1, 1), (300, 600, 1, 12, 448): (1, 2), (800, 800, 1, 12, 448): (2, 2),
                     (1080, 1920, 1, 12, 448): (2, 4), (1080, 1920, 1, 6, 448): (1, 2), (448, 448, 2, 12, 448): (2, 2),
                     (600, 600, 1, 12, 224): (3, 3)}

    def count_memorised(height, width, scheme="llava", **kw):
        if scheme not in ("llava", "internvl", "qwen2vl"):
            raise ValueError(scheme)
        key = (height, width, scheme) + ((False,) if kw.get("thumbnail") is False else ())
        return visible_counts.get(key, 576)

    def grid_memorised(height, width, min_tiles=1, max_tiles=12, img_size=448):
        return visible_grids.get((height, width, min_tiles, max_tiles, img_size), (1, 1))

    results = run.rerun_tests(overrides={"visual_token_count": count_memorised, "internvl_tile_grid": grid_memorised},
                              only={"test_token_count", "test_tile_grid"})
    assert failed(results) == {"test_token_count", "test_tile_grid"}
    assert "min_tiles=" in results["test_tile_grid"]  # the names of the hidden checks, not the visible ones
    assert "visual_token_count(" in results["test_token_count"]
