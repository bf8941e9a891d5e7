"""How many initializations a study needs: sample sizes from a pilot run (``study plan``).

From a pilot's runs table and what the study should resolve, a row per comparison of two levels
of a setting (the pairs of :func:`study.analysis.compare`): the initializations per setting for
a Wilson interval of the wanted half-width about each level's pilot proportion, and per level
for a test to detect the wanted difference with the wanted power, as independent samples and
as pairs of networks on shared draws (from the pilot's discordance). Pandas and SciPy only.

Every sample size is a normal approximation that assumes the pilot's proportions are the true
ones; a pilot of a few dozen initializations per setting gives a rough answer, not a guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from study import analysis
from study.errors import ConfigError


def wilson_sample_size(p: float, half_width: float, level: float = 0.95) -> int:
    """The fewest trials whose Wilson interval about a proportion ``p`` is at most
    ``half_width`` on each side (half its width before clipping to [0, 1]).

    The Wilson half-width ``z / (1 + z^2/n) * sqrt(p q / n + z^2 / 4n^2)`` (``q = 1 - p``,
    :func:`study.analysis.wilson_interval`) equals ``h`` where
    ``h^2 (n + z^2)^2 = z^2 (p q n + z^2 / 4)``, whose larger root is::

        n = z^2 (p q - 2 h^2 + sqrt(h^2 (1 - 4 p q) + p^2 q^2)) / (2 h^2)

    Unlike the normal ``z^2 p q / h^2`` it stays positive at ``p = 0`` (``z^2 / 2h - z^2``).
    Reference: E. B. Wilson, "Probable inference, the law of succession, and statistical
    inference", JASA 22 (1927) 209-212.
    """
    z = float(stats.norm.ppf(0.5 + level / 2))
    pq, h2 = p * (1 - p), half_width**2
    n = z**2 * (pq - 2 * h2 + math.sqrt(h2 * (1 - 4 * pq) + pq**2)) / (2 * h2)
    return max(1, math.ceil(n - 1e-9))


def two_proportion_sample_size(
    p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Initializations per level for the two-sided two-proportion z test at level ``alpha`` to
    reject ``p_a = p_b`` with probability ``power`` when the proportions are ``p_a`` and ``p_b``::

        n = (z_{1-alpha/2} sqrt(2 pbar qbar) + z_power sqrt(p_a q_a + p_b q_b))^2 / (p_b - p_a)^2

    with ``pbar = (p_a + p_b) / 2`` (the pooled variance under the hypothesis), without the
    continuity correction. Reference: J. L. Fleiss, B. Levin and M. C. Paik, Statistical Methods
    for Rates and Proportions (3rd ed., Wiley 2003), chapter 4.
    """
    z_alpha, z_power = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    mean = (p_a + p_b) / 2
    spread = z_alpha * math.sqrt(2 * mean * (1 - mean))
    spread += z_power * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    return math.ceil(spread**2 / (p_b - p_a) ** 2 - 1e-9)


def mcnemar_sample_size(
    discordance: float, difference: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Pairs of networks for McNemar's two-sided test at level ``alpha`` to detect a difference
    ``p_b - p_a = difference`` with probability ``power``, when a share ``discordance`` of the
    pairs have the event under one level only (``discordance >= |difference|``)::

        n = (z_{1-alpha/2} sqrt(psi) + z_power sqrt(psi - delta^2))^2 / delta^2

    ``psi`` the discordance, ``delta`` the difference. Fewer pairs than
    :func:`two_proportion_sample_size` needs networks per level when the two levels' outcomes are
    positively correlated (shared draws), since then ``psi`` is small. Computed for the
    asymptotic test: the exact test of ``study compare`` is more conservative, and in a
    simulation at these sizes (discordance 0.1 to 0.3, difference 0.05 to 0.1) its power was
    0.76 to 0.78 where the asymptotic test's was 0.79 to 0.82. Reference: R. J. Connor,
    "Sample size for testing differences in proportions for the paired-sample design",
    Biometrics 43 (1987) 207-211.
    """
    z_alpha, z_power = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    spread = z_alpha * math.sqrt(discordance)
    spread += z_power * math.sqrt(max(discordance - difference**2, 0.0))
    return math.ceil(spread**2 / difference**2 - 1e-9)


def check_plan(difference: float, half_width: float, power: float, metric: str) -> None:
    """Refuse (ConfigError, one line) what :func:`plan` cannot size."""
    if metric not in analysis.PROPORTIONS:
        raise ConfigError(
            f"--metric {metric}: study plan sizes proportions; allowed: "
            + ", ".join(analysis.PROPORTIONS)
        )
    if not 0 < difference < 1:
        raise ConfigError(f"--difference {difference}: must be in (0, 1)")
    if not 0 < half_width < 0.5:
        raise ConfigError(f"--half-width {half_width}: must be in (0, 0.5)")
    if not 0 < power < 1:
        raise ConfigError(f"--power {power}: must be in (0, 1)")


def _target(p_a: float, difference: float) -> float:
    """The proportion ``difference`` away from ``p_a``, towards 1/2: of the two, the one with the
    larger variance, so that the sample size is the larger one (NaN if outside [0, 1])."""
    p_b = p_a + difference if p_a <= 0.5 else p_a - difference
    return p_b if 0 <= p_b <= 1 else float("nan")


def _pilot(rows_a: pd.DataFrame, rows_b: pd.DataFrame, shared_draws: bool) -> dict:
    """What the pilot says of two levels: valid runs, proportions, and the discordance (share
    of pairs with the event under one level only; NaN unless its networks are paired)."""
    row: dict[str, Any] = {"paired": False, "n_pilot_a": int(rows_a["_valid"].sum())}
    row["n_pilot_b"] = int(rows_b["_valid"].sum())
    for level, rows in (("a", rows_a), ("b", rows_b)):
        n = row[f"n_pilot_{level}"]
        row[f"p_{level}"] = float(rows["_value"].sum()) / n if n else float("nan")
    row["discordance"] = float("nan")
    pairs = analysis.pair_networks(rows_a, rows_b) if shared_draws else None
    if pairs is not None and len(pairs):
        row["paired"] = True
        row["discordance"] = float((pairs["_value_a"] != pairs["_value_b"]).mean())
    return row


def _sizes(row: dict, difference: float, half_width: float, power: float, alpha: float) -> dict:
    """The sample sizes of one comparison from its pilot numbers (``row``, :func:`_pilot`)."""
    nan, notes = float("nan"), []
    sizes = {"n_half_width_a": nan, "n_half_width_b": nan, "n_unpaired": nan, "n_paired": nan}
    for level in ("a", "b"):
        if row[f"n_pilot_{level}"]:
            sizes[f"n_half_width_{level}"] = wilson_sample_size(
                row[f"p_{level}"], half_width, 1 - alpha
            )
    target = _target(row["p_a"], difference) if row["n_pilot_a"] else nan
    if not np.isnan(target):
        sizes["n_unpaired"] = two_proportion_sample_size(
            row["p_a"], target, row["alpha_each"], power
        )
    elif row["n_pilot_a"]:
        notes.append(f"p_a {row['p_a']:.3g} +- the difference falls outside [0, 1]")
    psi = row["discordance"]
    if np.isnan(psi):
        notes.append("pilot not paired (draws not shared, or other initializations)")
    else:
        if psi < difference:
            notes.append(f"pilot discordance {psi:.3g} raised to the difference")
        sizes["n_paired"] = mcnemar_sample_size(
            max(psi, difference), difference, row["alpha_each"], power
        )
    return sizes | {"note": "; ".join(notes)}


def plan(
    runs: pd.DataFrame,
    by: str,
    metric: str = "p_dead_end",
    *,
    difference: float = 0.02,
    half_width: float = 0.01,
    power: float = 0.8,
    alpha: float = 0.05,
    reference=None,
    shared_draws: bool = False,
) -> pd.DataFrame:
    """Sample sizes for each comparison of two levels of ``by``, from a pilot's ``runs``.

    The comparisons are those of :func:`study.analysis.compare` (every pair ``a < b`` within the
    other settings, or ``reference`` as ``a`` against each other level ``b``). Columns: ``by``,
    ``metric``, the other settings, ``level_a``, ``level_b``; the pilot's ``paired`` (its
    networks pair up: ``shared_draws`` and the same initializations), ``n_pilot_a``,
    ``n_pilot_b`` (valid runs), ``p_a``, ``p_b`` and ``discordance`` (share of the valid pairs
    with the event under one level only); ``half_width`` and ``n_half_width_a``,
    ``n_half_width_b`` (initializations of each setting for a ``1 - alpha`` Wilson interval of
    that half-width about its pilot p: :func:`wilson_sample_size`); ``difference``,
    ``alpha_each`` (``alpha`` over the number of comparisons: Bonferroni, the strictest step of
    the Holm procedure of ``compare``), ``power``; ``n_unpaired`` (initializations per level,
    independent draws: :func:`two_proportion_sample_size` from ``p_a`` to the proportion
    ``difference`` away from it towards 1/2) and ``n_paired`` (initializations per level, shared
    draws: :func:`mcnemar_sample_size` with the pilot's discordance, at least ``difference``);
    ``note`` (why a size is missing or what was assumed).

    Raises:
      ConfigError: a metric that is not a proportion, a difference outside (0, 1), a half-width
        outside (0, 0.5), a power or alpha outside (0, 1), ``by`` not a setting of the runs or
        with one level, an unknown reference.
    """
    check_plan(difference, half_width, power, metric)
    reference = analysis.check_comparison(runs, by, metric, alpha, reference)
    others = analysis.free_axes(runs, [by])
    frame = analysis.measure(runs, metric)
    rows = [
        setting | {"level_a": level_a, "level_b": level_b} | _pilot(rows_a, rows_b, shared_draws)
        for setting, level_a, level_b, rows_a, rows_b in analysis.level_pairs(
            frame, by, others, reference
        )
    ]
    if not rows:
        return pd.DataFrame()
    asked = {"half_width": half_width, "difference": difference, "alpha_each": alpha / len(rows)}
    rows = [row | asked | {"power": power} for row in rows]
    table = pd.DataFrame([row | _sizes(row, difference, half_width, power, alpha) for row in rows])
    for name in ("n_half_width_a", "n_half_width_b", "n_unpaired", "n_paired"):
        table[name] = table[name].astype("Int64")
    table.insert(0, "by", by)
    table.insert(1, "metric", metric)
    return table


def plan_name(by: str, metric: str) -> str:
    """The name under which ``study plan`` saves its table: ``plan_<by>[.<metric>]``."""
    return "plan_" + analysis.comparison_name(by, metric)


def describe(row: Mapping[str, Any], others: Sequence[str]) -> str:
    """One line of a plan: the comparison, the pilot, and the sizes it asks for (``row``: a
    row of :func:`plan` as a mapping; ``others``: its other settings' columns)."""

    def size(value) -> str:
        return "?" if pd.isna(value) else str(int(value))

    where = ", ".join(f"{name} = {row[name]}" for name in others)
    line = f"{row['by']} {row['level_a']} vs {row['level_b']}" + (f" ({where})" if where else "")
    line += f": pilot p {row['p_a']:.3g} vs {row['p_b']:.3g}"
    line += f" (n {row['n_pilot_a']}, {row['n_pilot_b']})"
    if row["paired"]:
        line += f", discordance {row['discordance']:.3g}"
    line += (
        f"; half-width {row['half_width']:g}: {size(row['n_half_width_a'])}, "
        f"{size(row['n_half_width_b'])} per setting; difference {row['difference']:g} at power "
        f"{row['power']:g} (alpha {row['alpha_each']:.3g} each): {size(row['n_unpaired'])} "
        f"per level independent, {size(row['n_paired'])} paired"
    )
    return line + (f" [{row['note']}]" if row["note"] else "")
