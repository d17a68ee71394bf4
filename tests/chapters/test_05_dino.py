"""Chapter 5's own tests; the checks every chapter runs (tests/chapters/solution_checks.py: the solution on
ten seeds, each plausible bug of bugs_05_dino.py and each alternative of alternatives_05_dino.py, the
student's view) are added by tests/chapters/conftest.py from the registry."""


def test_healthy_regime_beats_random_init_in_knn(run):
    """The section-6 experiment ran in the solution: pretrained features beat random init clearly."""
    ns = run.namespace
    accs = {}
    for name, net in (("random", ns["run"].initial), ("dino", ns["run"].teacher.backbone)):
        ftr, fte = ns["features"](net, ns["train_x"]), ns["features"](net, ns["test_x"])
        accs[name] = ns["few_shot_accuracy"](ftr, ns["train_y"], fte, ns["test_y"], 1)
    assert accs["dino"] > accs["random"] + 0.08, accs
