"""Statistics of a results table: Wilson intervals, per-setting summaries, and comparisons.

Everything here is pandas/NumPy/SciPy on the per-initialization table ``runs.parquet`` (a row per
setting and initialization). Nothing here trains a network; the only JAX call is rebuilding a
setting's data set (:func:`study.theory.setting_inputs`) when a closed form depends on the data.

Conventions (``shared/INTERFACE.md``): ``n_inits`` counts every initialization, diverged ones
included; ``p_dead_*``, ``p_revived`` and the dead-unit fractions are over the initializations
that did not diverge (``n_valid``); ``p_diverged`` is over all. A proportion whose denominator is
0 is NaN, with its interval, and the ``note`` column says why.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from study import theory
from study.config import SETTING_KEYS

# Boolean metrics summarized as proportions; the denominator is "valid" (not diverged) or "all".
PROPORTIONS = {
    "p_dead_init": ("dead_init", "valid"),
    "p_dead_end": ("dead_end", "valid"),
    "p_revived": ("revived", "valid"),
    "p_diverged": ("diverged", "all"),
}
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
    """The setting columns of a runs table, in schema order."""
    return [name for name in SETTING_KEYS if name in runs.columns]


def layer_columns(runs: pd.DataFrame, when: str) -> list[str]:
    """``dead_units_<when>_l1 .. _lL`` present in the table, in layer order."""
    found = [(int(m[2]), c) for c in runs.columns if (m := _PER_LAYER.match(c)) and m[1] == when]
    return [c for _, c in sorted(found)]


def _group_keys(runs: pd.DataFrame, by: Sequence[str] | None) -> list[str]:
    if by is None:
        return setting_columns(runs)
    by = [by] if isinstance(by, str) else list(by)
    missing = [name for name in by if name not in runs.columns]
    if missing:
        from study.config import ConfigError

        raise ConfigError(
            f"--by {', '.join(missing)}: not a column of the results; "
            f"setting columns: {', '.join(setting_columns(runs))}"
        )
    return by


def theory_per_setting(runs: pd.DataFrame, seed: int | None = None) -> pd.DataFrame:
    """The closed-form P(dead at init) of every distinct setting in ``runs``.

    Returns a frame with the setting columns, ``p_dead_init_theory`` (NaN where no formula
    applies) and ``theory`` (the formula's name, see :func:`study.theory.p_dead_init_theory`).
    With ``seed=None`` the data set is unknown and only data-free formulas are used.
    """
    columns = setting_columns(runs)
    settings = runs[columns].drop_duplicates().reset_index(drop=True)
    values, names = [], []
    for _, row in settings.iterrows():
        setting = row.to_dict()
        inputs = None
        if seed is not None and _may_need_data(setting):
            inputs = theory.setting_inputs(setting, seed)
        p, name = theory.p_dead_init_theory(setting, inputs)
        values.append(p)
        names.append(name)
    settings["p_dead_init_theory"] = np.asarray(values, dtype=float)
    settings["theory"] = names
    return settings


def _may_need_data(setting: dict) -> bool:
    return setting.get("model.activation", "relu") == "relu"


def summarize(
    runs: pd.DataFrame,
    by: Sequence[str] | str | None = None,
    *,
    seed: int | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """A row per group of ``runs``: proportions with Wilson intervals, theory, unit fractions.

    Columns, in order: the ``by`` columns; ``n_inits``; ``p_dead_init``, ``p_dead_end``,
    ``p_revived``, ``p_diverged``, each followed by ``_lo`` and ``_hi`` (Wilson, ``level``);
    ``dead_frac_init_l1..`` and ``dead_frac_end_l1..`` (mean over valid initializations of dead
    units / width in that hidden layer; NaN for layers beyond a setting's depth);
    ``mean_final_accuracy``; ``p_dead_init_theory``; ``theory_disagrees`` (theory outside the
    Wilson interval of death at init over ALL initializations, diverged ones included); then
    ``n_valid`` (initializations that did not diverge), ``n_dead_init``,
    ``p_revived_dead_init`` with its interval (share of the valid networks dead at init that
    revived), ``theory`` (formula name) and ``note``.

    Args:
      runs: the per-initialization table (``runs.parquet``).
      by: the columns to group by; None = every setting column (a row per setting).
      seed: the study seed (``manifest.json``); needed for closed forms that depend on the data
        set (e.g. the 2-D ReLU formula). None = only data-free formulas.
      level: confidence level of the intervals.
    """
    keys = _group_keys(runs, by)
    frame = runs.copy()
    frame["_valid"] = ~frame["diverged"].astype(bool)
    widths = frame["model.width"].astype(float) if "model.width" in frame else np.nan
    fraction_columns = []
    for when in ("init", "end"):
        for column in layer_columns(frame, when):
            name = column.replace("dead_units_", "dead_frac_")
            frame[name] = frame[column].astype(float) / widths
            frame.loc[~frame["_valid"], name] = np.nan
            fraction_columns.append(name)

    theory_table = theory_per_setting(runs, seed)
    frame = frame.merge(theory_table, on=setting_columns(runs), how="left")
    grouped = frame.groupby(keys, sort=True, dropna=False)

    counts = pd.DataFrame({"n_inits": grouped.size(), "n_valid": grouped["_valid"].sum()})
    summary = counts.copy()
    for name, (metric, over) in PROPORTIONS.items():
        hits = frame[metric].astype(bool) & (frame["_valid"] if over == "valid" else True)
        k = hits.groupby([frame[c] for c in keys], sort=True, dropna=False).sum()
        n = counts["n_valid"] if over == "valid" else counts["n_inits"]
        summary[name], summary[f"{name}_lo"], summary[f"{name}_hi"] = _proportion(k, n, level)
    for name in fraction_columns:
        summary[name] = grouped[name].mean()
    accuracy = frame["final_accuracy"].where(frame["_valid"])
    summary["mean_final_accuracy"] = accuracy.groupby(
        [frame[c] for c in keys], sort=True, dropna=False
    ).mean()

    # A group's theory is the common value of its settings; NaN if they differ or none applies.
    summary["p_dead_init_theory"] = grouped["p_dead_init_theory"].agg(_common_value)
    summary["theory"] = grouped["theory"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else "")
    summary.loc[summary["p_dead_init_theory"].isna(), "theory"] = ""
    # Death at init is decided before any training, so the theory is compared with it over ALL
    # initializations: p_dead_init leaves out diverged runs, and those are mostly living ones.
    dead_at_init_all = (
        frame["dead_init"].astype(bool).groupby([frame[c] for c in keys], sort=True, dropna=False)
    )
    _, lo_all, hi_all = _proportion(dead_at_init_all.sum(), counts["n_inits"], level)
    tolerance = 1e-12
    summary["theory_disagrees"] = summary["p_dead_init_theory"].notna() & (
        (summary["p_dead_init_theory"] < lo_all - tolerance)
        | (summary["p_dead_init_theory"] > hi_all + tolerance)
    )

    dead_valid = (frame["dead_init"].astype(bool) & frame["_valid"]).groupby(
        [frame[c] for c in keys], sort=True, dropna=False
    )
    n_dead = dead_valid.sum()
    revived_dead = (
        (frame["revived"].astype(bool) & frame["dead_init"].astype(bool) & frame["_valid"])
        .groupby([frame[c] for c in keys], sort=True, dropna=False)
        .sum()
    )
    summary["n_dead_init"] = n_dead
    (
        summary["p_revived_dead_init"],
        summary["p_revived_dead_init_lo"],
        summary["p_revived_dead_init_hi"],
    ) = _proportion(revived_dead, n_dead, level)
    summary["note"] = np.where(
        summary["n_valid"] == 0, "every initialization diverged: no proportion over valid ones", ""
    )

    summary = summary.reset_index()
    ordered = list(keys) + ["n_inits"]
    for name in PROPORTIONS:
        ordered += [name, f"{name}_lo", f"{name}_hi"]
    ordered += [c for c in fraction_columns if "_init_" in c]
    ordered += [c for c in fraction_columns if "_end_" in c]
    ordered += ["mean_final_accuracy", "p_dead_init_theory", "theory_disagrees", "n_valid"]
    ordered += ["n_dead_init", "p_revived_dead_init", "p_revived_dead_init_lo"]
    ordered += ["p_revived_dead_init_hi", "theory", "note"]
    summary = summary[ordered]
    summary["n_inits"] = summary["n_inits"].astype(np.int64)
    summary["n_valid"] = summary["n_valid"].astype(np.int64)
    summary["n_dead_init"] = summary["n_dead_init"].astype(np.int64)
    return summary


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


# --------------------------------------------------------------------------------------------
# Results folders.
# --------------------------------------------------------------------------------------------


def read_manifest(folder) -> dict:
    """``DIR/manifest.json`` as a dict ({} when the folder has none).

    A manifest of another format version is refused with a clear message (exit status 2).
    """
    from study.results import read_manifest as read_checked

    return read_checked(folder, required=False)


def study_seed(folder) -> int | None:
    """The study seed recorded in ``DIR/manifest.json`` (None when unknown)."""
    manifest = read_manifest(folder)
    seed = manifest.get("config", {}).get("seed", manifest.get("seed"))
    return None if seed is None else int(seed)


def load_runs(folder) -> pd.DataFrame:
    """``DIR/runs.parquet``; a folder without one is a usage error (exit status 2)."""
    from pathlib import Path

    from study.config import ConfigError

    path = Path(folder) / "runs.parquet"
    if not Path(folder).is_dir():
        raise ConfigError(f"{str(folder)!r}: no such results folder")
    if not path.exists():
        raise ConfigError(f"{str(folder)!r}: no runs.parquet; run `study run` first")
    read_manifest(folder)  # refuses results written in another format
    return pd.read_parquet(path)


def load_summary(folder) -> pd.DataFrame:
    """The folder's per-setting summary: ``summary.csv`` if the run wrote it, else computed."""
    from pathlib import Path

    path = Path(folder) / "summary.csv"
    if path.exists():
        summary = pd.read_csv(path, keep_default_na=False, na_values=[""])
        # Text columns that were empty come back as NaN; as in runs.parquet they are "".
        for name in ("data.path", "data.features", "theory", "note"):
            if name in summary:
                summary[name] = summary[name].astype(object).fillna("").astype(str)
        return summary
    return summarize(load_runs(folder), seed=study_seed(folder))


def varying_columns(table: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Setting columns that take more than one value in ``table``, in schema order."""
    return [
        c for c in setting_columns(table) if c not in exclude and table[c].nunique(dropna=False) > 1
    ]


def survival(runs: pd.DataFrame, by: Sequence[str], level: float = 0.95) -> pd.DataFrame:
    """Fraction of (non-diverged) initializations not yet dead for good at each logged step.

    ``death_step`` is the first logged step from which a network stays dead (-1 if alive at the
    end), so the curve is ``S(t) = 1 - P(0 <= death_step <= t)``, with Wilson bands. It starts at
    ``1 - P(dead at init and never revived)`` and ends at ``1 - p_dead_end``.

    Returns a long table: the ``by`` columns, ``step``, ``alive``, ``alive_lo``, ``alive_hi``,
    ``n_valid``.
    """
    by = list(by)
    rows = []
    groups = runs.groupby(by, sort=True, dropna=False) if by else [((), runs)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        valid = group[~group["diverged"].astype(bool)]
        steps_total = int(group["train.steps"].max())
        log_every = int(group["train.log_every"].min())
        steps = np.unique(np.append(np.arange(0, steps_total + 1, log_every), steps_total))
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
        rows.append(part)
    return pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Comparisons between levels of one setting.
# --------------------------------------------------------------------------------------------

# A 2x2 table whose smallest expected count is below this uses Fisher's exact test.
MIN_EXPECTED_FOR_Z = 5.0


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


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979); controls the family-wise error rate."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
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


def compare(
    runs: pd.DataFrame, by: str, metric: str = "p_dead_end", alpha: float = 0.05
) -> pd.DataFrame:
    """Test every pair of levels of ``by``, within each combination of the other settings.

    Counts come from ``runs`` (a row per initialization). For each pair ``(a, b)`` of levels
    with ``a < b``: the proportions, their difference ``p_b - p_a`` with a ``1 - alpha`` Newcombe
    interval, the test (:func:`two_proportion_test`), and Holm-adjusted p-values across the whole
    table; ``significant`` is ``p_holm < alpha``.

    Args:
      runs: per-initialization table; a ``results`` column (several folders) may be ``by``.
      by: the column whose levels are compared.
      metric: ``p_dead_init``, ``p_dead_end``, ``p_revived`` or ``p_diverged``.
      alpha: family-wise error level.
    """
    from study.config import ConfigError

    if metric not in PROPORTIONS:
        raise ConfigError(f"--metric {metric}: unknown; allowed: {', '.join(PROPORTIONS)}")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha {alpha}: must be in (0, 1)")
    if by not in runs.columns:
        raise ConfigError(
            f"--by {by}: not a column of the results; setting columns: "
            f"{', '.join(setting_columns(runs))}"
        )
    if runs[by].nunique(dropna=False) < 2:
        raise ConfigError(f"--by {by}: takes a single value in these results; nothing to compare")
    column, over = PROPORTIONS[metric]
    others = free_axes(runs, [by])
    frame = runs.assign(
        _hit=runs[column].astype(bool),
        _valid=~runs["diverged"].astype(bool) if over == "valid" else True,
    )
    frame["_hit"] &= frame["_valid"]
    counts = (
        frame.groupby(others + [by], sort=True, dropna=False)
        .agg(k=("_hit", "sum"), n=("_valid", "sum"))
        .reset_index()
    )
    rows = []
    groups = counts.groupby(others, sort=True, dropna=False) if others else [((), counts)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        levels = group.sort_values(by).to_dict("records")
        for first, second in itertools.combinations(levels, 2):
            k1, n1, k2, n2 = (int(first["k"]), int(first["n"]), int(second["k"]), int(second["n"]))
            row = dict(zip(others, key, strict=True))
            row.update({"level_a": first[by], "level_b": second[by], "n_a": n1, "k_a": k1})
            row.update({"n_b": n2, "k_b": k2})
            if n1 == 0 or n2 == 0:
                row.update(p_a=np.nan, p_b=np.nan, difference=np.nan, difference_lo=np.nan)
                row.update(difference_hi=np.nan, test="none (no valid runs)", p_value=np.nan)
            else:
                lo, hi = newcombe_interval(k1, n1, k2, n2, 1 - alpha)
                test, p_value = two_proportion_test(k1, n1, k2, n2)
                row.update(p_a=k1 / n1, p_b=k2 / n2, difference=k2 / n2 - k1 / n1)
                row.update(difference_lo=lo, difference_hi=hi, test=test, p_value=p_value)
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    tested = table["p_value"].notna()
    table["p_holm"] = np.nan
    table.loc[tested, "p_holm"] = holm(table.loc[tested, "p_value"])
    table["significant"] = table["p_holm"] < alpha
    table.insert(0, "by", by)
    table.insert(1, "metric", metric)
    return table


def _comparison_path(folder, by: str, metric: str):
    from pathlib import Path

    name = by if metric == "p_dead_end" else f"{by}.{metric}"
    return Path(folder) / "comparisons" / f"{name}.csv"


def main(args) -> int:
    """``study compare DIR [DIR ...] --by KEY [--metric M] [--alpha A]``."""
    from pathlib import Path

    frames = []
    for folder in args.dirs:
        runs = load_runs(folder)
        if len(args.dirs) > 1:
            runs = runs.assign(results=Path(folder).name or str(folder))
        frames.append(runs)
    runs = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    table = compare(runs, args.by, args.metric, args.alpha)
    path = _comparison_path(args.dirs[0], args.by, args.metric)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    if table.empty:
        print(f"no pair of {args.by} levels shares the other settings; wrote {path}")
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {path}")
    return 0
