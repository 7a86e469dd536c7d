"""The kit's one exact binomial confidence interval (Clopper & Pearson, Biometrika 26:404-413, 1934), through scipy's
``binomtest(...).proportion_ci(method="exact")``: reader accuracies, GAN fooling rates and 0/1 effects all use it."""

from __future__ import annotations

from scipy import stats

from medadv.errors import ConfigError

__all__ = ["check_level", "clopper_pearson"]


def check_level(level: float) -> None:
    """Refuse a confidence level outside (0, 1); returns nothing.

    Raises:
        ConfigError: naming the level seen and the range expected.
    """
    if not 0.0 < float(level) < 1.0:
        raise ConfigError(f"level is {level}; expected a confidence level in (0, 1), e.g. 0.95.")


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial confidence interval for ``k`` successes in ``n`` trials.

    Returns:
        (low, high) at ``level``; (NaN, NaN) when ``n`` is 0.

    Raises:
        ConfigError: ``level`` outside (0, 1).
    """
    check_level(level)
    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)
