"""The kit's one exact binomial CI against scipy, and the GAN attack table that uses it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from medadv.attacks.gan_attack import Rate, gan_attack_evaluation
from medadv.errors import ConfigError
from medadv.stats.binomial import clopper_pearson
from scipy import stats


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 7), (3, 7), (7, 7), (42, 44), (251, 363), (1, 1000)])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_clopper_pearson_matches_scipy(k: int, n: int, level: float) -> None:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    assert clopper_pearson(k, n, level) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_clopper_pearson_by_the_beta_quantiles() -> None:
    low, high = clopper_pearson(42, 44)  # paper 001: "42 out of the 44 ... 95.5%"
    assert low == pytest.approx(stats.beta.ppf(0.025, 42, 3)) and high == pytest.approx(stats.beta.ppf(0.975, 43, 2))
    assert 0.84 < low < 0.85 and 0.99 < high < 1.0


def test_edges_and_bad_levels() -> None:
    assert clopper_pearson(0, 5)[0] == 0.0 and clopper_pearson(5, 5)[1] == 1.0
    assert all(math.isnan(v) for v in clopper_pearson(0, 0))
    with pytest.raises(ConfigError, match="level is 1.5"):
        clopper_pearson(1, 2, level=1.5)


def test_the_gan_attack_table_uses_it() -> None:
    assert Rate(42, 44).ci == clopper_pearson(42, 44, 0.95)
    labels = np.array([1, 1, 1, 0, 0, 0])
    result = gan_attack_evaluation(
        labels, np.array([0.9, 0.8, 0.2, 0.1, 0.3, 0.6]), np.array([0.1, 0.7, 0.9, 0.8, 0.2, 0.4])
    )
    table = result.table().set_index("row")
    fooled = table[table["N"].astype(float) > 0].iloc[-1]
    assert (fooled["ci_low"], fooled["ci_high"]) == pytest.approx(clopper_pearson(int(fooled["n"]), int(fooled["N"])))
