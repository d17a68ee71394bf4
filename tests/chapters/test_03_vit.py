"""Chapter 3 has no tests of its own: the checks every chapter runs (tests/chapters/solution_checks.py: the
solution on ten seeds, each plausible bug of bugs_03_vit.py and each alternative of
alternatives_03_vit.py, the student's view) are added by tests/chapters/conftest.py from the registry."""
