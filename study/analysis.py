"""Statistics of a results table: Wilson intervals, per-setting summaries, and comparisons.

Everything here is pandas/NumPy/SciPy on the per-initialization table ``runs.parquet`` (a row per
setting and initialization); nothing here imports JAX. Where a closed form depends on the data
set, the caller passes a function that rebuilds it (:func:`study.data.setting_inputs`).

Conventions (``shared/INTERFACE.md``): ``n_inits`` counts every initialization, diverged ones
included; ``p_dead_*``, ``p_revived`` and the dead-unit fractions are over the initializations
that did not diverge (``n_valid``); ``p_diverged`` is over all. A proportion whose denominator is
0 is NaN, with its interval, and the ``note`` column says why.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from study import theory
from study.config import BASELINE, SETTING_KEYS, VARIANT_COLUMN, check_steps
from study.errors import ConfigError

# Boolean metrics summarized as proportions; the denominator is "valid" (not diverged) or "all".
PROPORTIONS = {
    "p_dead_init": ("dead_init", "valid"),
    "p_dead_end": ("dead_end", "valid"),
    "p_revived": ("revived", "valid"),
    "p_diverged": ("diverged", "all"),
}
# Which way a network came back (issue 12), where the study has interventions or flips: over
# training steps, or at an intervention (``revived`` is their "or"); over valid initializations.
REVIVAL_WAYS = {
    "p_revived_by_training": "revived_by_training",
    "p_revived_by_intervention": "revived_by_intervention",
}
# A function from a setting (a mapping of config keys) to its training inputs, or None.
InputsOf = Callable[[Mapping[str, Any]], "np.ndarray | None"]
# The theory columns of a summary, one per field of study.theory.Theory.
THEORY_COLUMNS = (
    "p_dead_init_theory",
    "p_dead_init_lower",
    "p_dead_init_upper",
    "theory",
    "theory_note",
)
_PER_LAYER = re.compile(r"^dead_units_(init|end)_l(\d+)$")


def wilson_interval(successes, n, level: float = 0.95):
    """Wilson score interval for a binomial proportion (Wilson 1927).

    With ``p = k / n`` and ``z`` the ``(1 + level) / 2`` normal quantile::

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

    Unlike the Wald interval it stays inside [0, 1] and keeps its coverage near p = 0 or 1, where
    dead-at-init probabilities often sit.

    Args:
      successes: count(s) k, array-like of ints.
      n: number(s) of trials, same shape; where n = 0 both bounds are NaN.
      level: confidence level in (0, 1).

    Returns:
      ``(lo, hi)`` as floats or float arrays of the broadcast shape.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    z = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    # Exact bounds at the edges: k = 0 gives lo = 0 and k = n gives hi = 1 (rounding aside).
    lo = np.where(k == 0, np.where(n > 0, 0.0, np.nan), lo)
    hi = np.where((k == n) & (n > 0), 1.0, hi)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def setting_columns(runs: pd.DataFrame) -> list[str]:
    """The setting columns of a runs table: ``variant`` first when the study has variants, then
    the config keys in schema order."""
    variant = [VARIANT_COLUMN] if VARIANT_COLUMN in runs.columns else []
    return variant + [name for name in SETTING_KEYS if name in runs.columns]


def layer_columns(runs: pd.DataFrame, when: str) -> list[str]:
    """``dead_units_<when>_l1 .. _lL`` present in the table, in layer order."""
    found = [(int(m[2]), c) for c in runs.columns if (m := _PER_LAYER.match(c)) and m[1] == when]
    return [c for _, c in sorted(found)]


def dead_share(runs: pd.DataFrame, when: str = "end") -> pd.Series:
    """Per initialization: the share of its hidden units dead at ``when`` (``"init"`` or
    ``"end"``), every hidden layer pooled: ``sum_K dead_units_<when>_lK / (depth * width)``.

    Units of one network are not independent; networks are, so a mean of this share over
    networks has its interval from their spread.
    """
    layers = layer_columns(runs, when)
    return runs[layers].sum(axis=1) / (len(layers) * runs["model.width"])


def _group_keys(runs: pd.DataFrame, by: Sequence[str] | None) -> list[str]:
    if by is None:
        return setting_columns(runs)
    by = [by] if isinstance(by, str) else list(by)
    missing = [name for name in by if name not in runs.columns]
    if missing:
        raise ConfigError(
            f"--by {', '.join(missing)}: not a column of the results; "
            f"setting columns: {', '.join(setting_columns(runs))}"
        )
    return by


def theory_per_setting(runs: pd.DataFrame, inputs: InputsOf | None = None) -> pd.DataFrame:
    """The closed-form P(dead at init) of every distinct setting in ``runs``.

    Returns a frame with the setting columns and :data:`THEORY_COLUMNS`: ``p_dead_init_theory``
    (the exact value, NaN where none is proved), ``p_dead_init_lower`` and ``p_dead_init_upper``
    (proved bounds where only bounds exist, else NaN), ``theory`` (the result's tag) and
    ``theory_note`` (which result applies, or why none does); see
    :func:`study.theory.p_dead_init_theory`.

    Args:
      runs: the per-initialization table.
      inputs: ``inputs(values) -> float[n_samples, dim] | None``, the training inputs of a setting
        given as a mapping of config keys (:func:`study.data.setting_inputs` with the study
        seed); None = the data are unknown and only data-free results are used.
    """
    settings = runs[setting_columns(runs)].drop_duplicates().reset_index(drop=True)
    rows = []
    for _, row in settings.iterrows():
        setting = row.to_dict()
        data = inputs(setting) if inputs is not None and _needs_data(setting) else None
        rows.append(theory.p_dead_init_theory(setting, data))
    found = pd.DataFrame(rows, columns=list(theory.Theory._fields))
    for column, field in zip(THEORY_COLUMNS, theory.Theory._fields, strict=True):
        settings[column] = found[field].to_numpy(dtype=float if column.startswith("p_") else object)
    return settings


def _needs_data(setting: Mapping[str, Any]) -> bool:
    """Whether a setting's theory depends on its data set (ReLU, or leaky ReLU of slope 0)."""
    activation = setting.get("model.activation", "relu")
    slope = setting.get("model.leaky_slope", 0.01)
    return activation == "relu" or (activation == "leaky_relu" and float(slope) == 0.0)


def summarize(
    runs: pd.DataFrame,
    by: Sequence[str] | str | None = None,
    *,
    inputs: InputsOf | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """A row per group of ``runs``: counts, proportions with Wilson intervals, theory.

    Columns, in order: the ``by`` columns; ``n_inits`` (every initialization) and ``n_valid``
    (those that did not diverge); for each of ``dead_init``, ``dead_end``, ``revived`` and
    ``diverged`` the count ``k_<metric>`` and ``p_<metric>`` with ``_lo`` and ``_hi`` (Wilson,
    ``level``; over ``n_valid``, ``p_diverged`` over ``n_inits``); ``dead_frac_init_l1..`` and
    ``dead_frac_end_l1..`` (mean over valid initializations of dead units / width in that hidden
    layer; NaN for layers beyond a setting's depth); ``mean_final_accuracy``;
    ``p_dead_init_theory`` (the exact P(dead at init), NaN where none is proved),
    ``p_dead_init_lower`` and ``p_dead_init_upper`` (proved bounds, where only bounds exist) and
    ``theory_disagrees`` (the Wilson interval of death at init over ALL initializations, diverged
    ones included, excludes the exact value or misses the bounds' interval);
    ``k_revived_dead_init`` and ``p_revived_dead_init`` with its interval (of the ``k_dead_init``
    valid networks dead at init, those that revived); only where the runs have an intervention
    or a sign flip (:func:`has_interventions`): ``k_revived_by_training``,
    ``p_revived_by_training`` and the same ``_by_intervention``, with intervals (over
    ``n_valid``: which way the revived networks came back; a network can count in both);
    ``theory`` (the result's tag),
    ``theory_note`` (which result applies, or why none does) and ``note``.

    Args:
      runs: the per-initialization table (``runs.parquet``).
      by: the columns to group by; None = every setting column, ``variant`` among them.
      inputs: the training inputs of a setting (see :func:`theory_per_setting`), for closed
        forms that depend on the data set (e.g. the 2-D ReLU formula). None = data-free only.
      level: confidence level of the intervals.
    """
    keys = _group_keys(runs, by)
    ways = REVIVAL_WAYS if has_interventions(runs) else {}
    frame, counts, fractions = _per_run_columns(runs, inputs, ways)
    grouped = frame.groupby(keys, sort=True, dropna=False)

    summary = grouped[["n_valid", *counts]].sum().astype(np.int64)
    summary.insert(0, "n_inits", grouped.size())
    denominators = {"valid": summary["n_valid"], "all": summary["n_inits"]}
    for name, (_, over) in PROPORTIONS.items():
        _add_proportion(summary, name, summary[_count_name(name)], denominators[over], level)
    _add_proportion(
        summary,
        "p_revived_dead_init",
        summary["k_revived_dead_init"],
        summary["k_dead_init"],
        level,
    )
    for name in ways:
        _add_proportion(summary, name, summary[_count_name(name)], summary["n_valid"], level)
    summary = summary.join(grouped[[*fractions, "mean_final_accuracy"]].mean())
    summary = summary.join(_theory_columns(grouped, summary["n_inits"], level))
    summary["note"] = np.where(
        summary["n_valid"] == 0, "every initialization diverged: no proportion over valid ones", ""
    )
    return summary[_summary_order(fractions, ways)].reset_index()


def has_interventions(runs: pd.DataFrame) -> bool:
    """Whether ``runs`` records which way networks revived and some row has a remedy that acts
    on the parameters (``train.intervention`` other than none, or ``model.flip_dead``)."""
    if not set(REVIVAL_WAYS.values()) <= set(runs.columns):
        return False
    intervened = runs.get("train.intervention", pd.Series("none", index=runs.index)) != "none"
    flipped = runs.get("model.flip_dead", pd.Series(False, index=runs.index)).astype(bool)
    return bool((intervened | flipped).any())


def _per_run_columns(runs: pd.DataFrame, inputs: InputsOf | None, ways: Mapping[str, str]):
    """``runs`` with what :func:`summarize` adds up per group: ``(frame, counts, fractions)``.

    ``counts`` and ``fractions`` are the added columns' names: each count column is 1 where an
    initialization counts towards it, each fraction column a share of dead units (NaN where the
    initialization diverged). The theory of each row's setting is merged in.
    """
    valid = ~runs["diverged"].astype(bool)
    dead_init = runs["dead_init"].astype(bool)
    counts = {
        _count_name(name): runs[metric].astype(bool) & (valid if over == "valid" else True)
        for name, (metric, over) in PROPORTIONS.items()
    }
    counts["k_revived_dead_init"] = counts["k_revived"] & dead_init
    for name, metric in ways.items():
        counts[_count_name(name)] = runs[metric].astype(bool) & valid
    fractions = _dead_fractions(runs)
    frame = runs.assign(
        n_valid=valid,
        **counts,
        _dead_init_all=dead_init,
        **fractions,
        mean_final_accuracy=runs["final_accuracy"].where(valid),
    ).merge(theory_per_setting(runs, inputs), on=setting_columns(runs), how="left")
    return frame, list(counts), list(fractions)


def _count_name(proportion: str) -> str:
    """``k_dead_init`` for ``p_dead_init``: the count beside a proportion."""
    return "k_" + proportion.removeprefix("p_")


def _summary_order(fractions, ways) -> list[str]:
    """The summary's columns after the group keys, as :func:`summarize` documents them."""
    order = ["n_inits", "n_valid"]
    for name in PROPORTIONS:
        order += [_count_name(name), name, f"{name}_lo", f"{name}_hi"]
    order += [*fractions, "mean_final_accuracy", *THEORY_COLUMNS[:3], "theory_disagrees"]
    order += ["k_revived_dead_init", "p_revived_dead_init", "p_revived_dead_init_lo"]
    order += ["p_revived_dead_init_hi"]
    for name in ways:
        order += [_count_name(name), name, f"{name}_lo", f"{name}_hi"]
    return order + [*THEORY_COLUMNS[3:], "note"]


def _theory_columns(grouped, n_inits: pd.Series, level: float) -> pd.DataFrame:
    """The theory of each group: :data:`THEORY_COLUMNS` and ``theory_disagrees``.

    A group's theory is the common value of its settings; NaN (and a note saying so) if they
    differ. Death at init is decided before any training, so the theory is compared with it over
    ALL initializations: ``p_dead_init`` leaves out diverged runs, and those are mostly living
    ones. A group disagrees when its Wilson interval excludes the exact value, or lies wholly
    below the lower bound or above the upper bound.
    """
    value = grouped["p_dead_init_theory"].agg(_common_value)
    lower = grouped["p_dead_init_lower"].agg(_common_value)
    upper = grouped["p_dead_init_upper"].agg(_common_value)
    _, lo, hi = _proportion(grouped["_dead_init_all"].sum(), n_inits, level)
    tolerance = 1e-12
    outside_exact = value.notna() & ((value < lo - tolerance) | (value > hi + tolerance))
    outside_bounds = lower.notna() & ((hi < lower - tolerance) | (lo > upper + tolerance))
    name = grouped["theory"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else "")
    note = grouped["theory_note"].agg(
        lambda s: s.iloc[0] if s.nunique() == 1 else "the group's settings have different theory"
    )
    return pd.DataFrame(
        {
            "p_dead_init_theory": value,
            "p_dead_init_lower": lower,
            "p_dead_init_upper": upper,
            "theory_disagrees": outside_exact | outside_bounds,
            "theory": name,
            "theory_note": note,
        }
    )


def _dead_fractions(runs: pd.DataFrame) -> dict[str, pd.Series]:
    """``dead_frac_<when>_lK``: dead units / width per layer, NaN for diverged initializations."""
    valid = ~runs["diverged"].astype(bool)
    widths = runs["model.width"].astype(float) if "model.width" in runs else np.nan
    fractions = {}
    for when in ("init", "end"):
        for column in layer_columns(runs, when):
            share = runs[column].astype(float) / widths
            fractions[column.replace("dead_units_", "dead_frac_")] = share.where(valid)
    return fractions


def _add_proportion(summary: pd.DataFrame, name: str, k, n, level: float) -> None:
    summary[name], summary[f"{name}_lo"], summary[f"{name}_hi"] = _proportion(k, n, level)


def _proportion(k: pd.Series, n: pd.Series, level: float):
    k = k.astype(float)
    n = n.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, k / n, np.nan)
    lo, hi = wilson_interval(k.to_numpy(), n.to_numpy(), level)
    return p, np.atleast_1d(lo), np.atleast_1d(hi)


def _common_value(values: pd.Series) -> float:
    values = values.to_numpy(dtype=float)
    if len(values) == 0 or np.isnan(values).any():
        return float("nan")
    return float(values[0]) if np.allclose(values, values[0], rtol=0, atol=1e-12) else float("nan")


def varying_columns(table: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Setting columns that take more than one value in ``table``, in schema order."""
    return [
        c for c in setting_columns(table) if c not in exclude and table[c].nunique(dropna=False) > 1
    ]


def survival(runs: pd.DataFrame, by: Sequence[str], level: float = 0.95) -> pd.DataFrame:
    """Fraction of (non-diverged) initializations not yet dead for good at each logged step.

    ``death_step`` is the first logged step from which a network stays dead (-1 if alive at the
    end), so the curve is ``S(t) = 1 - P(0 <= death_step <= t)``, with Wilson bands. It starts at
    ``1 - P(dead at init and never revived)`` and ends at ``1 - p_dead_end``. The hazard at a
    check is the share of the networks alive at the check before that die by this one, per step
    between the two (NaN at step 0, whose deaths are those at initialization), with the Wilson
    interval of that share divided by the same steps.

    Returns a long table: the ``by`` columns, ``step``, ``alive``, ``alive_lo``, ``alive_hi``,
    ``n_valid``, ``hazard``, ``hazard_lo``, ``hazard_hi``.
    """
    by = list(by)
    rows = []
    groups = runs.groupby(by, sort=True, dropna=False) if by else [((), runs)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        valid = group[~group["diverged"].astype(bool)]
        steps_total = int(group["train.steps"].max())
        log_every = int(group["train.log_every"].min())
        log_first = int(group["train.log_first"].min()) if "train.log_first" in group else 0
        checks = check_steps(steps_total, log_every, log_first)
        steps = np.unique(np.append(checks, steps_total))
        death = valid["death_step"].to_numpy()
        n = len(valid)
        dead_by = np.array([np.sum((death >= 0) & (death <= t)) for t in steps])
        alive = n - dead_by
        lo, hi = wilson_interval(alive, np.full_like(alive, n), level)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(n > 0, alive / max(n, 1), np.nan)
        part = pd.DataFrame(
            {"step": steps, "alive": share, "alive_lo": lo, "alive_hi": hi, "n_valid": n}
        )
        for name, value in zip(by, key, strict=True):
            part.insert(len(part.columns) - 5, name, value)
        part["hazard"], part["hazard_lo"], part["hazard_hi"] = _hazard(steps, alive)
        rows.append(part)
    return pd.concat(rows, ignore_index=True)


def _hazard(steps: np.ndarray, alive: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, ...]:
    """Deaths per step per network alive at the check before, with Wilson bounds; NaN first."""
    at_risk, deaths = alive[:-1], alive[:-1] - alive[1:]
    gaps = np.diff(steps).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(at_risk > 0, deaths / np.maximum(at_risk, 1), np.nan)
    lo, hi = wilson_interval(deaths, at_risk, level)  # NaN where none is at risk
    first = np.array([np.nan])
    return tuple(np.concatenate([first, v / gaps]) for v in (rate, lo, hi))


# --------------------------------------------------------------------------------------------
# Comparisons between levels of one setting.
# --------------------------------------------------------------------------------------------

# A 2x2 table whose smallest expected count is below this uses Fisher's exact test.
MIN_EXPECTED_FOR_Z = 5.0
# Metrics measured on a scale, compared by their means: the name -> its runs column.
MEANS = {"final_loss": "final_loss", "final_accuracy": "final_accuracy"}
# Every metric :func:`compare` takes.
METRICS = (*PROPORTIONS, *MEANS)


def newcombe_interval(k1, n1, k2, n2, level: float = 0.95) -> tuple[float, float]:
    """Interval for ``p2 - p1`` from the two Wilson intervals (Newcombe 1998, method 10).

    ``lo = d - sqrt((p2 - l2)^2 + (u1 - p1)^2)`` and ``hi = d + sqrt((u2 - p2)^2 + (p1 - l1)^2)``
    with ``d = p2 - p1``; good coverage even for counts near 0 or n, unlike the Wald interval.
    """
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, level)
    l2, u2 = wilson_interval(k2, n2, level)
    d = p2 - p1
    return d - np.hypot(p2 - l2, u1 - p1), d + np.hypot(u2 - p2, p1 - l1)


def newcombe_paired_interval(
    both: int, a_only: int, b_only: int, neither: int, level: float = 0.95
) -> tuple[float, float]:
    """Interval for ``p_b - p_a`` of paired yes/no outcomes (Newcombe 1998, paired method 10).

    Each of ``n`` networks is observed under level a and under level b: ``both`` had the event
    under both, ``a_only`` under a only, ``b_only`` under b only, ``neither`` under neither. With
    ``p_a = (both + a_only) / n``, ``p_b = (both + b_only) / n``, ``d = p_b - p_a``, the Wilson
    intervals ``(l_a, u_a)`` and ``(l_b, u_b)`` of the two margins (:func:`wilson_interval`) and
    the correlation ``phi`` of the 2x2 table::

        lo = d - sqrt((p_b - l_b)^2 - 2 phi (p_b - l_b)(u_a - p_a) + (u_a - p_a)^2)
        hi = d + sqrt((u_b - p_b)^2 - 2 phi (u_b - p_b)(p_a - l_a) + (p_a - l_a)^2)

    ``phi = C / sqrt((both + a_only)(b_only + neither)(both + b_only)(a_only + neither))`` with
    ``C = both * neither - a_only * b_only`` lowered by ``n / 2`` where it exceeds ``n / 2`` and
    0 where it lies in ``[0, n / 2]`` (Newcombe's correction, which keeps the interval from being
    too narrow); ``phi = 0`` where a margin is 0. Positively correlated outcomes (networks that die
    under both levels) narrow the interval below :func:`newcombe_interval`'s. Where few pairs are
    discordant it is conservative (coverage above the level: ``tests/test_paired.py``).

    Reference: R. G. Newcombe, "Improved confidence intervals for the difference between binomial
    proportions based on paired data", Statistics in Medicine 17 (1998) 2635-2650, method 10.

    Returns:
      ``(lo, hi)``; NaN for ``n = 0``.
    """
    n = both + a_only + b_only + neither
    if n == 0:
        return float("nan"), float("nan")
    p_a, p_b = (both + a_only) / n, (both + b_only) / n
    l_a, u_a = wilson_interval(both + a_only, n, level)
    l_b, u_b = wilson_interval(both + b_only, n, level)
    margins = float(both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    cross = float(both) * neither - float(a_only) * b_only
    corrected = cross - n / 2 if cross > n / 2 else min(cross, 0.0)
    phi = corrected / np.sqrt(margins) if margins > 0 else 0.0
    below = (p_b - l_b) ** 2 - 2 * phi * (p_b - l_b) * (u_a - p_a) + (u_a - p_a) ** 2
    above = (u_b - p_b) ** 2 - 2 * phi * (u_b - p_b) * (p_a - l_a) + (p_a - l_a) ** 2
    d = p_b - p_a
    return d - float(np.sqrt(max(below, 0.0))), d + float(np.sqrt(max(above, 0.0)))


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided p-value of McNemar's exact test of ``p_a = p_b`` on paired yes/no outcomes.

    Only the ``m = a_only + b_only`` discordant pairs carry information; under the hypothesis
    each falls either way with probability 1/2, so (the binomial being symmetric) the exact
    two-sided binomial test gives ``p = min(1, 2 P(X <= min(a_only, b_only)))``,
    ``X ~ Binomial(m, 1/2)``; ``p = 1`` when no pair is discordant.

    Reference: Q. McNemar, "Note on the sampling error of the difference between correlated
    proportions or percentages", Psychometrika 12 (1947) 153-157; the exact conditional form as
    in A. Agresti, Categorical Data Analysis (3rd ed., Wiley 2013), on matched pairs.
    """
    m = a_only + b_only
    if m == 0:
        return 1.0
    return float(min(1.0, 2 * stats.binom.cdf(min(a_only, b_only), m, 0.5)))


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> tuple[str, float]:
    """``(test name, two-sided p-value)`` for H0: p1 = p2.

    Fisher's exact test when any expected count of the 2x2 table is below
    :data:`MIN_EXPECTED_FOR_Z`, else the pooled two-proportion z test.
    """
    total, hits = n1 + n2, k1 + k2
    expected = np.outer([n1, n2], [hits, total - hits]) / total
    if expected.min() < MIN_EXPECTED_FOR_Z:
        result = stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]])
        return "fisher", float(result.pvalue)
    pooled = hits / total
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (k2 / n2 - k1 / n1) / se
    return "z", float(2 * stats.norm.sf(abs(z)))


def welch_test(values_a, values_b, level: float = 0.95) -> tuple[float, float, float, float]:
    """Welch's t interval and test for ``mean_b - mean_a`` of two independent samples.

    ``d = mean_b - mean_a``, ``se^2 = s_a^2 / n_a + s_b^2 / n_b`` (sample variances), degrees of
    freedom ``se^4 / ((s_a^2 / n_a)^2 / (n_a - 1) + (s_b^2 / n_b)^2 / (n_b - 1))``
    (Satterthwaite), interval ``d -+ t se`` with ``t`` the ``(1 + level) / 2`` quantile, and the
    two-sided p-value of ``d / se``. Reference: B. L. Welch, "The generalization of 'Student's'
    problem when several different population variances are involved", Biometrika 34 (1947) 28-35.

    Args:
      values_a, values_b: float[n_a], float[n_b], at least two values each.

    Returns:
      ``(d, lo, hi, p)``; with ``se = 0`` the interval is ``[d, d]`` and ``p`` is 1 if ``d = 0``,
      else 0.
    """
    a, b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    var_a, var_b = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(var_a + var_b))
    df = se**4 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1)) if se > 0 else 1.0
    return _t_interval_test(float(b.mean() - a.mean()), se, df, level)


def paired_t_test(differences, level: float = 0.95) -> tuple[float, float, float, float]:
    """t interval and test for the mean of paired differences (``value_b - value_a`` per network).

    ``d = mean``, ``se = s / sqrt(n)`` (sample standard deviation), ``n - 1`` degrees of freedom
    (Student 1908, "The probable error of a mean", Biometrika 6, 1-25). Returns ``(d, lo, hi, p)``
    as :func:`welch_test`; at least two differences.
    """
    d = np.asarray(differences, dtype=float)
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    return _t_interval_test(float(d.mean()), se, len(d) - 1, level)


def _t_interval_test(difference: float, se: float, df: float, level: float):
    if se == 0:
        return difference, difference, difference, float(difference == 0)
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    p_value = float(2 * stats.t.sf(abs(difference) / se, df))
    return difference, difference - half, difference + half, p_value


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979); controls the family-wise error rate.

    A NaN p-value (a comparison that could not be tested) stays NaN and is not counted in the
    family.
    """
    p = np.asarray(p_values, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    adjusted = np.full(len(p), np.nan)
    running = 0.0
    for rank, index in enumerate(tested[np.argsort(p[tested])]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def free_axes(table: pd.DataFrame, given: Sequence[str]) -> list[str]:
    """Varying setting columns not fixed by ``given`` and the ones before them.

    A column that is a function of others (``model.bias_scale`` follows ``model.init_range`` by
    default) adds no level of its own, so it is left out.
    """
    free: list[str] = []
    for name in varying_columns(table, exclude=given):
        keys = list(given) + free
        if not keys or table.groupby(keys, dropna=False)[name].nunique(dropna=False).max() > 1:
            free.append(name)
    return free


def shares_draws(draws: Sequence[tuple[str, int | None]]) -> bool:
    """Whether the networks of these folders pair up by initialization index, from each
    folder's ``(pairing, seed)`` (``Manifest.pairing``, ``Manifest.seed``): every folder drew
    them shared, all from one seed."""
    return (
        len(draws) > 0
        and all(pairing == "shared" for pairing, _ in draws)
        and len({seed for _, seed in draws}) == 1
    )


def reference_of(config: Mapping[str, Any]) -> str:
    """The name of a folder's base variant: its config's ``reference``, else ``baseline``."""
    return str(config.get("reference", BASELINE))


def check_comparison(runs: pd.DataFrame, by: str, metric: str, alpha: float, reference=None):
    """Refuse (ConfigError, one line) what :func:`compare` cannot do; return the level of ``by``
    that ``reference`` names (None for none): the level itself, or its text (``"2"`` for 2.0)."""
    if metric not in METRICS and not _is_measure(runs, metric):
        raise ConfigError(
            f"--metric {metric}: unknown; allowed: {', '.join(METRICS)}, or a numeric column of "
            "the runs"
        )
    column = PROPORTIONS[metric][0] if metric in PROPORTIONS else MEANS.get(metric, metric)
    if column not in runs.columns:
        raise ConfigError(f"--metric {metric}: these results have no {column} column")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha {alpha}: must be in (0, 1)")
    keys = setting_columns(runs) + [c for c in ("results",) if c in runs.columns]
    if by not in keys:
        raise ConfigError(f"--by {by}: not a setting of these results; settings: {', '.join(keys)}")
    levels = runs[by].drop_duplicates().sort_values().tolist()
    if len(levels) < 2:
        raise ConfigError(f"--by {by}: takes a single value in these results; nothing to compare")
    if reference is None:
        return None
    found = _level_named(levels, reference)
    if found is None:
        raise ConfigError(
            f"--reference {reference}: not a level of {by}; levels: "
            + ", ".join(str(level) for level in levels)
        )
    return found[0]


# Per-network columns that are numbers but no measure to average: the initialization's index,
# and the step of death (-1 for a network that never died).
NOT_MEASURES = ("init", "death_step")


def _is_measure(runs: pd.DataFrame, column: str) -> bool:
    """Whether ``column`` is a per-network number of ``runs`` (not a boolean, not a setting)
    that :func:`compare` can take as a mean."""
    return (
        column in runs.columns
        and column not in setting_columns(runs)
        and column not in NOT_MEASURES
        and pd.api.types.is_numeric_dtype(runs[column])
        and not pd.api.types.is_bool_dtype(runs[column])
    )


def _level_named(levels: list, name) -> tuple | None:
    """``(level,)`` for the level that ``name`` is or spells (``"2"`` for 2.0), else None."""
    for same in (lambda level: level == name, lambda level: str(level) == str(name)):
        for level in levels:
            if same(level):
                return (level,)
    for level in levels:
        if str(level).lower() == str(name).lower():
            return (level,)
    for level in levels:
        try:
            if float(level) == float(name):
                return (level,)
        except (TypeError, ValueError):
            continue
    return None


def measure(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``runs`` with ``_value`` and ``_valid``: whether each initialization counts for ``metric``
    and, if so, its event (a proportion: False where it does not count) or value (a mean).

    A proportion over valid runs counts the initializations that did not diverge, one over all
    of them every one; a mean counts those that did not diverge and have a finite value.
    """
    diverged = runs["diverged"].astype(bool)
    if metric not in PROPORTIONS:
        value = runs[MEANS.get(metric, metric)].astype(float)
        return runs.assign(_value=value, _valid=~diverged & np.isfinite(value))
    column, over = PROPORTIONS[metric]
    valid = ~diverged if over == "valid" else pd.Series(True, index=runs.index)
    return runs.assign(_value=runs[column].astype(bool) & valid, _valid=valid)


def level_pairs(frame: pd.DataFrame, by: str, others: Sequence[str], reference=None):
    """The comparisons of :func:`compare`: ``(setting, level_a, level_b, rows_a, rows_b)``.

    Within each combination of ``others`` (``setting``: a dict of their values), every pair of
    ``by``'s levels ``a < b``, or with ``reference`` the reference as ``a`` against every other
    level as ``b`` (none where the combination lacks the reference); ``rows_a`` and ``rows_b``
    are the rows of ``frame`` at each level.
    """
    groups = frame.groupby(list(others), sort=True, dropna=False) if others else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        cells = dict(list(group.groupby(by, sort=True, dropna=False)))
        levels = list(cells)
        if reference is None:
            pairs = list(itertools.combinations(levels, 2))
        else:
            others_ = [level for level in levels if level != reference]
            pairs = [(reference, level) for level in others_] if reference in cells else []
        for level_a, level_b in pairs:
            setting = dict(zip(others, key, strict=True))
            yield setting, level_a, level_b, cells[level_a], cells[level_b]


def pair_networks(rows_a: pd.DataFrame, rows_b: pd.DataFrame) -> pd.DataFrame | None:
    """Two levels' networks side by side, matched on ``init``, the pairs valid under both (a
    network that diverged in either arm leaves its pair out): ``init``, ``_value_a``,
    ``_valid_a``, ``_value_b``, ``_valid_b`` (from :func:`measure`); None unless both levels
    hold each of the same initialization indices once (then they are not pairs)."""
    if "init" not in rows_a or "init" not in rows_b:
        return None
    init_a, init_b = rows_a["init"], rows_b["init"]
    if init_a.duplicated().any() or init_b.duplicated().any() or set(init_a) != set(init_b):
        return None
    columns = ["init", "_value", "_valid"]
    pairs = rows_a[columns].merge(rows_b[columns], on="init", suffixes=("_a", "_b"))
    return pairs[pairs["_valid_a"] & pairs["_valid_b"]]


def _untested(test: str) -> dict:
    nan = float("nan")
    names = ("difference", "difference_lo", "difference_hi", "p_value")
    return dict.fromkeys(names, nan) | {"test": test}


def _compare_pair(first: dict, second: dict, alpha: float) -> dict:
    """Counts, proportions, difference with its interval, and test of two levels' ``k`` of ``n``
    (independent samples)."""
    k1, n1, k2, n2 = (int(first["k"]), int(first["n"]), int(second["k"]), int(second["n"]))
    nan = float("nan")
    row: dict[str, Any] = {"paired": False, "n_a": n1, "k_a": k1, "n_b": n2, "k_b": k2}
    row |= {"k_a_only": nan, "k_b_only": nan}
    if n1 == 0 or n2 == 0:
        return row | dict(p_a=nan, p_b=nan) | _untested("none (no valid runs)")
    lo, hi = newcombe_interval(k1, n1, k2, n2, 1 - alpha)
    test, p_value = two_proportion_test(k1, n1, k2, n2)
    return row | _proportions(k1 / n1, k2 / n2, lo, hi, test, p_value)


def _proportions(p_a: float, p_b: float, lo: float, hi: float, test: str, p_value: float):
    """The columns of a compared proportion: both levels', the difference ``b - a`` with its
    interval, the test and its p-value."""
    return dict(
        p_a=p_a,
        p_b=p_b,
        difference=p_b - p_a,
        difference_lo=lo,
        difference_hi=hi,
        test=test,
        p_value=p_value,
    )


def _compare_paired(pairs: pd.DataFrame, alpha: float) -> dict:
    """:func:`_compare_pair` for the pairs of networks valid under both levels
    (:func:`pair_networks`): McNemar's exact test and Newcombe's paired interval."""
    return paired_proportions(pairs["_value_a"], pairs["_value_b"], 1 - alpha)


def paired_proportions(event_a, event_b, level: float = 0.95) -> dict:
    """Two yes/no outcomes of the same networks (``bool[n]`` each, matched by position): the
    counts (``k_a_only``: the event under a only), both shares, the difference ``p_b - p_a``
    with Newcombe's paired interval at ``level`` and McNemar's exact test (untested when
    ``n = 0``)."""
    event_a, event_b = np.asarray(event_a, dtype=bool), np.asarray(event_b, dtype=bool)
    n = len(event_a)
    both, a_only = int(np.sum(event_a & event_b)), int(np.sum(event_a & ~event_b))
    b_only = int(np.sum(~event_a & event_b))
    k_a, k_b = both + a_only, both + b_only
    row: dict[str, Any] = {"paired": True, "n_a": n, "k_a": k_a, "n_b": n, "k_b": k_b}
    row |= {"k_a_only": a_only, "k_b_only": b_only}
    if n == 0:
        nan = float("nan")
        return row | dict(p_a=nan, p_b=nan) | _untested("none (no pair valid under both)")
    lo, hi = newcombe_paired_interval(both, a_only, b_only, n - k_a - b_only, level)
    return row | _proportions(k_a / n, k_b / n, lo, hi, "mcnemar", mcnemar_exact(a_only, b_only))


def _compare_means(
    rows_a: pd.DataFrame, rows_b: pd.DataFrame, pairs: pd.DataFrame | None, alpha: float
) -> dict:
    """Means of two levels, the difference ``b - a`` with its interval, and its test: the
    paired t test on the pairs valid under both levels, else Welch's."""
    if pairs is not None:
        values_a, values_b = pairs["_value_a"].to_numpy(float), pairs["_value_b"].to_numpy(float)
    else:
        values_a = rows_a.loc[rows_a["_valid"], "_value"].to_numpy(float)
        values_b = rows_b.loc[rows_b["_valid"], "_value"].to_numpy(float)
    nan = float("nan")
    row: dict[str, Any] = {"paired": pairs is not None, "n_a": len(values_a)}
    row["n_b"] = len(values_b)
    row |= {"k_a_only": nan, "k_b_only": nan}
    row |= {"mean_a": values_a.mean() if len(values_a) else nan}
    row |= {"mean_b": values_b.mean() if len(values_b) else nan}
    if min(len(values_a), len(values_b)) < 2:
        return row | _untested("none (fewer than 2 valid runs)")
    if pairs is not None:
        test, result = "paired_t", paired_t_test(values_b - values_a, 1 - alpha)
    else:
        test, result = "welch", welch_test(values_a, values_b, 1 - alpha)
    names = ("difference", "difference_lo", "difference_hi", "p_value")
    return row | dict(zip(names, result, strict=True)) | {"test": test}


def _compare_levels(rows_a, rows_b, metric: str, alpha: float, shared_draws: bool) -> dict:
    """One row of :func:`compare`: paired where the draws are shared and the levels hold the
    same initializations, else as independent samples."""
    pairs = pair_networks(rows_a, rows_b) if shared_draws else None
    if metric not in PROPORTIONS:
        return _compare_means(rows_a, rows_b, pairs, alpha)
    if pairs is not None:
        return _compare_paired(pairs, alpha)
    first, second = ({"k": r["_value"].sum(), "n": r["_valid"].sum()} for r in (rows_a, rows_b))
    return _compare_pair(first, second, alpha)


# The columns of a comparison after the levels: of a proportion, and of a mean.
PROPORTION_COLUMNS = ["paired", "n_a", "k_a", "n_b", "k_b", "k_a_only", "k_b_only", "p_a", "p_b"]
MEAN_COLUMNS = ["paired", "n_a", "n_b", "k_a_only", "k_b_only", "mean_a", "mean_b"]
TEST_COLUMNS = ["difference", "difference_lo", "difference_hi", "test", "p_value"]


def compare(
    runs: pd.DataFrame,
    by: str,
    metric: str = "p_dead_end",
    alpha: float = 0.05,
    *,
    shared_draws: bool = False,
    reference=None,
) -> pd.DataFrame:
    """Test levels of ``by`` against each other, within each combination of the other settings.

    For each pair of levels ``(a, b)`` (``a`` the first level, ``b`` the second: ``a < b``, or
    with ``reference``, ``a`` the reference and ``b`` each other level): the estimates under each
    level, their difference ``b - a`` with a ``1 - alpha`` interval, the test, and Holm-adjusted
    p-values across the whole table (``p_holm``); ``significant`` is ``p_holm < alpha``.

    Paired (``paired``) with ``shared_draws`` (:func:`shares_draws`) where both levels hold the
    same initialization indices: networks matched on ``init`` within the other settings, a pair
    counted only if valid under both levels (not diverged; for a mean, finite), so ``n_a = n_b``
    is the number of pairs. Otherwise the levels are independent samples of their valid runs.

    A proportion (``p_dead_init``, ``p_dead_end``, ``p_revived``, ``p_diverged``): ``n_a``,
    ``k_a``, ``n_b``, ``k_b``, ``p_a``, ``p_b``; ``k_a_only`` and ``k_b_only`` are the paired
    networks with the event under one level only (for ``p_dead_end``: ``k_a_only`` dead under a
    and alive under b, the networks b saved; ``k_b_only`` the networks b killed), empty unless
    paired. ``test``: ``mcnemar`` (exact, :func:`mcnemar_exact`) with Newcombe's paired interval
    (:func:`newcombe_paired_interval`) when paired, else ``fisher`` or ``z``
    (:func:`two_proportion_test`) with Newcombe's interval (:func:`newcombe_interval`).

    A mean (``final_loss``, ``final_accuracy``, or any other numeric, non-boolean column of
    ``runs`` that is not a setting, e.g. ``initial_loss`` or one a caller added): ``n_a``,
    ``n_b``, ``mean_a``, ``mean_b``; the test ``paired_t`` (:func:`paired_t_test`, per-network
    differences) when paired, else ``welch`` (:func:`welch_test`); ``k_a_only`` and
    ``k_b_only`` are empty.

    Args:
      runs: per-initialization table; a ``results`` column (several folders) or a ``variant``
        column may be ``by``.
      by: the column whose levels are compared.
      metric: one of :data:`METRICS`, or a numeric column of ``runs`` (compared by its mean).
      alpha: family-wise error level; the intervals are ``1 - alpha`` per comparison.
      shared_draws: whether the runs' draws are shared across settings (one seed).
      reference: a level of ``by`` (or its text) to compare every other level with; None = all
        pairs.
    """
    reference = check_comparison(runs, by, metric, alpha, reference)
    others = free_axes(runs, [by])
    rows = [
        setting
        | {"level_a": level_a, "level_b": level_b}
        | _compare_levels(rows_a, rows_b, metric, alpha, shared_draws)
        for setting, level_a, level_b, rows_a, rows_b in level_pairs(
            measure(runs, metric), by, others, reference
        )
    ]
    return _comparison_table(rows, by, metric, others, alpha) if rows else pd.DataFrame()


def _comparison_table(rows: list[dict], by: str, metric: str, others, alpha: float):
    """:func:`compare`'s rows as its table, in its order, with the Holm-adjusted p-values."""
    columns = PROPORTION_COLUMNS if metric in PROPORTIONS else MEAN_COLUMNS
    table = pd.DataFrame(rows)[[*others, "level_a", "level_b", *columns, *TEST_COLUMNS]]
    for name in ("k_a_only", "k_b_only"):
        table[name] = table[name].astype("Int64" if metric in PROPORTIONS else float)
    table["p_holm"] = holm(table["p_value"])
    table["significant"] = table["p_holm"] < alpha
    table.insert(0, "by", by)
    table.insert(1, "metric", metric)
    return table


def comparison_name(by: str, metric: str) -> str:
    """The name under which ``study compare`` saves a table: ``<by>`` or ``<by>.<metric>``."""
    return by if metric == "p_dead_end" else f"{by}.{metric}"


def mean_curves(curves: pd.DataFrame, hue: str | None) -> pd.DataFrame:
    """Per (hue level, step): the mean error and share of hidden units dead over the
    initializations, with 95% normal intervals (``_lo``, ``_hi``) and ``n``."""
    dead = [name for name in curves if name.startswith("dead_units_l")]
    units = curves["model.width"] * curves["model.depth"]
    share = curves[dead].sum(axis=1, min_count=1) / units.where(units > 0) if dead else np.nan
    frame = curves.assign(dead_share=share, level=curves[hue] if hue else "all")
    grouped = frame.groupby(["level", "step"])[["error", "dead_share"]]
    mean, sd, n = grouped.mean(), grouped.std(), grouped.count()
    table = mean.copy()
    for name in ("error", "dead_share"):
        half = stats.norm.ppf(0.975) * sd[name] / n[name].clip(lower=1) ** 0.5  # NaN for one run
        table[f"{name}_lo"], table[f"{name}_hi"] = mean[name] - half, mean[name] + half
    table["n"] = n["error"]
    return table.reset_index()


def auroc(scores, outcome, level: float = 0.95) -> tuple[float, float, float]:
    """The area under the ROC curve of ``scores`` for the boolean ``outcome``, with DeLong's
    interval: ``(auroc, lower, upper)``.

    AUROC is the Mann-Whitney probability that a network with the outcome scores higher than one
    without, ties counting 1/2: ``A = mean over pairs (i with, j without) of psi(x_i, y_j)``,
    ``psi = 1 (x > y), 1/2 (x = y), 0``. Its variance (DeLong, DeLong and Clarke-Pearson 1988,
    Biometrics 44) is ``var(V10) / m + var(V01) / n`` with ``V10_i`` the mean of ``psi(x_i, .)``
    over the ``n`` without and ``V01_j`` that of ``psi(., y_j)`` over the ``m`` with; the interval
    is ``A -+ z sqrt(variance)``, clipped to [0, 1]. Below 1/2: low scores predict the outcome.
    NaN scores are left out; NaN everywhere when either group is empty.
    """
    scores, outcome = np.asarray(scores, dtype=float), np.asarray(outcome, dtype=bool)
    kept = ~np.isnan(scores)
    x, y = scores[kept & outcome], scores[kept & ~outcome]
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        return np.nan, np.nan, np.nan
    # psi summed over the other group from midranks: rank in both groups minus rank in its own
    combined = stats.rankdata(np.concatenate([x, y]))
    v10 = (combined[:m] - stats.rankdata(x)) / n
    v01 = 1 - (combined[m:] - stats.rankdata(y)) / m
    area = float(v10.mean())
    variance = (np.var(v10, ddof=1) / m if m > 1 else 0.0) + (
        np.var(v01, ddof=1) / n if n > 1 else 0.0
    )
    half = stats.norm.ppf((1 + level) / 2) * np.sqrt(variance)
    return area, max(0.0, area - half), min(1.0, area + half)


def metric_auroc(
    curves: pd.DataFrame,
    runs: pd.DataFrame,
    outcome: pd.Series,
    metrics: Sequence[str],
    level: float = 0.95,
) -> pd.DataFrame:
    """How well each metric at each logged step predicts an outcome at the end of the run.

    ``outcome``: a boolean per row of ``runs`` (e.g. ``runs["dead_end"]``, or
    ``runs["probe_ratio"] < 0.5``, failing the trainability probe); diverged runs are left out.
    ``metrics``: columns of ``curves`` (``effective_rank_l1``, ``dead_units_l1``, ...). The
    curves' rows are matched to the runs by their key columns (variant, settings, ``init``).

    Returns a row per (metric, step): ``metric``, ``step``, ``auroc``, ``auroc_lo``,
    ``auroc_hi`` (:func:`auroc`, DeLong's interval at ``level``), ``n_with``, ``n_without``
    (networks with and without the outcome and a finite metric).
    """
    keys = [name for name in (VARIANT_COLUMN, *SETTING_KEYS, "init") if name in runs]
    labelled = runs[keys].assign(_outcome=np.asarray(outcome, dtype=bool))
    if "diverged" in runs:
        labelled = labelled[~runs["diverged"].to_numpy(dtype=bool)]
    joined = curves.merge(labelled, on=keys, how="inner", validate="many_to_one")
    rows = []
    for metric in metrics:
        for step, at_step in joined.groupby("step", sort=True):
            scores, label = at_step[metric].to_numpy(dtype=float), at_step["_outcome"].to_numpy()
            area, lo, hi = auroc(scores, label, level)
            finite = ~np.isnan(scores)
            rows.append(
                {
                    "metric": metric,
                    "step": step,
                    "auroc": area,
                    "auroc_lo": lo,
                    "auroc_hi": hi,
                    "n_with": int(np.sum(finite & label)),
                    "n_without": int(np.sum(finite & ~label)),
                }
            )
    return pd.DataFrame(rows)


# "Fails the trainability probe" (issue 26): the network ends the probe on its fresh task above
# this factor times the final loss of a fresh network trained on the same task for as long.
PROBE_FAIL_LOSS_FACTOR = 1.5


def fails_probe(runs: pd.DataFrame) -> pd.Series:
    """Per run: fails the trainability probe, ``probe_final_loss`` above
    :data:`PROBE_FAIL_LOSS_FACTOR` times ``probe_fresh_final_loss``; a probe loss that is not
    finite (the probe diverged) fails. The one definition of scripts/reproduce_plasticity.py and
    ``study report``."""
    final, fresh = runs["probe_final_loss"], runs["probe_fresh_final_loss"]
    return ~np.isfinite(final) | (final > PROBE_FAIL_LOSS_FACTOR * fresh)


def sustained_from(part: pd.DataFrame) -> int | None:
    """The index in ``part`` (one metric's :func:`metric_auroc` rows, by step) from which the
    AUROC's interval stays on one side of 0.5 at every later logged step, or None: a single
    step's interval leaving 0.5 among many steps and metrics is expected by chance, a lasting one
    is not."""
    above = (part["auroc_lo"] > 0.5).to_numpy()
    below = (part["auroc_hi"] < 0.5).to_numpy()
    for side in (above, below):
        if side[-1]:
            start = len(side)
            while start > 0 and side[start - 1]:
                start -= 1
            return start
    return None


# The per-layer columns of curves.parquet that may predict lost plasticity, in reading order
# (unit counts, then measures of the layer); then the network's gradient norm and online error.
CURVE_METRICS = (
    "dead_units", "inactive_units", "dormant_units", "rarely_active_units", "zero_share",
    "grad_dormant_units", "always_active_units", "effective_rank", "srank", "stable_rank",
    "weight_magnitude", "distance_from_start",
)  # fmt: skip


def curve_metrics(curves: pd.DataFrame) -> list[str]:
    """The columns of ``curves`` named by :data:`CURVE_METRICS` (``<name>_lK``, layer by layer
    for each name), then ``grad_norm`` and ``error`` where present."""
    layered = []
    for name in CURVE_METRICS:
        found = [c for c in curves if re.fullmatch(rf"{name}_l(\d+)", c)]
        layered += sorted(found, key=lambda c: int(c.rpartition("_l")[2]))
    return layered + [name for name in ("grad_norm", "error") if name in curves]
