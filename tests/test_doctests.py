"""The runnable examples in the docstrings of the entry points a user calls first are run here as doctests.

Each example is short and fast (tiny tensors, a 4 x 4 image, three 8 x 8 PNGs, a 2 x 2 DICOM): this test runs them
all, so the README's test command covers them, and fails if an entry point loses its example.
"""

from __future__ import annotations

import doctest
import importlib
import time

import pytest

# module -> the entry points in it that must carry an example
EXAMPLES = {
    "medadv.data.sources": ["load_cohort"],
    "medadv.data.dicom": ["read_dicom"],
    "medadv.attacks.gradient": ["pgd", "apgd"],
    "medadv.attacks.square": ["square"],
    "medadv.explain.attribute": ["attribute"],
    "medadv.explain.alignment": [
        "pointing_game",
        "energy_pointing_game",
        "relevance_mass_accuracy",
        "relevance_rank_accuracy",
        "topk_coverage",
        "topk_iou",
        "mask_auroc",
        "MetricInfo.chance_level",
    ],
    "medadv.stats.mrmc": ["or_hillis"],
}


@pytest.mark.parametrize("module_name", sorted(EXAMPLES))
def test_the_examples_run_and_give_what_they_show(module_name: str) -> None:
    module = importlib.import_module(module_name)  # not attribute access: medadv.explain.attribute is also a function
    finder = doctest.DocTestFinder()
    tests = {t.name.removeprefix(f"{module_name}."): t for t in finder.find(module) if t.examples}
    missing = [name for name in EXAMPLES[module_name] if name not in tests]
    assert not missing, f"{module_name}: no runnable example in the docstring of {missing}"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for name, test in tests.items():
        start = time.perf_counter()
        result = runner.run(test)
        assert result.failed == 0, f"{module_name}.{name}: {result.failed} of {result.attempted} examples failed"
        assert time.perf_counter() - start < 5.0, f"{module_name}.{name}: the example is too slow for a doctest"
