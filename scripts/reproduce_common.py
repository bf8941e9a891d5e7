"""What every reproduction script shares: flags, running a config, intervals and figure helpers.

Each ``scripts/reproduce_<name>.py`` runs one or more configs of ``study/configs/`` through the
public command line (``study run CONFIG --out results/<name>/<part>``), reads the tables back with
the public API (:mod:`study.analysis`) and draws its own figures into ``results/<name>/figures``.

Flags shared by the scripts:

* ``--tiny``: a smoke-test size (one structural group, a few steps and initializations), used by
  ``tests/test_reproduce.py``; the numbers it gives mean nothing.
* ``--out DIR``: the results folder (default ``results/<name>``).
* ``--force``: recompute runs even if the folder holds complete results of the same config (the
  engine is not part of a folder's identity, so after an engine change use ``--force``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from study import analysis, plots, results  # noqa: E402
from study.cli import main as study_cli  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "study" / "configs"
Z95 = 1.959963984540054


def parse_args(name: str, description: str, argv: Sequence[str] | None = None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="smoke-test size; numbers mean nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / name, help="results folder")
    parser.add_argument("--force", action="store_true", help="recompute runs already on disk")
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(f"[reproduce] {text}", flush=True)


def run_config(
    config: str,
    out: Path,
    *,
    overrides: Sequence[str] = (),
    n_inits: int | None = None,
    force: bool = False,
    quiet: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``study run CONFIG --out OUT`` (no generic figures); returns ``(runs, summary)``."""
    argv = ["run", str(CONFIGS / config), "--out", str(out), "--no-figures"]
    for override in overrides:
        argv += ["--set", override]
    if n_inits is not None:
        argv += ["--n-inits", str(n_inits)]
    if force:
        argv.append("--force")
    if quiet:
        argv.append("--quiet")
    say("study " + " ".join(argv[:4]) + ("" if not overrides else f" (+{len(overrides)} --set)"))
    status = study_cli(argv)
    if status != 0:
        raise SystemExit(f"study run {config} failed with exit status {status}")
    folder = results.ResultsFolder.open(out)
    return folder.runs(), folder.summary()


def run_sized(
    config: str, out: Path, args, tiny: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`run_config` at the script's size: with ``--tiny``, the overrides ``tiny`` and 64
    initializations, quietly; otherwise the config as written. ``args``: :func:`parse_args`'s."""
    return run_config(
        config,
        out,
        overrides=tiny if args.tiny else (),
        n_inits=64 if args.tiny else None,
        force=args.force,
        quiet=args.tiny,
    )


def wilson(k, n) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson bounds of k successes in n trials (arrays)."""
    lo, hi = analysis.wilson_interval(np.asarray(k, float), np.asarray(n, float))
    return np.atleast_1d(lo), np.atleast_1d(hi)


def proportion_table(frame: pd.DataFrame, by: Sequence[str], event: str) -> pd.DataFrame:
    """``k``, ``n``, ``p`` with 95% Wilson bounds of boolean column ``event`` per group of ``by``.

    Diverged rows are left out (as in ``summary.csv``).
    """
    valid = frame[~frame["diverged"].astype(bool)]
    table = (
        valid.groupby(list(by), sort=True)[event]
        .agg(k="sum", n="count")
        .reset_index()
        .astype({"k": np.int64, "n": np.int64})
    )
    table["p"] = table["k"] / table["n"]
    table["p_lo"], table["p_hi"] = wilson(table["k"], table["n"])
    return table


def mean_interval(name: str, values: pd.Series, low=-np.inf, high=np.inf) -> dict[str, float]:
    """``{name, name_lo, name_hi}``: the mean of ``values`` (one per run or network) with a 95%
    normal interval, clipped to ``[low, high]``; NaN bounds for a single value."""
    half = Z95 * values.std() / np.sqrt(len(values)) if len(values) > 1 else np.nan
    mean = values.mean()
    return {name: mean, f"{name}_lo": max(mean - half, low), f"{name}_hi": min(mean + half, high)}


def mean_table(
    frame: pd.DataFrame,
    by: Sequence[str],
    value: str,
    bounds: tuple[float | None, float | None] = (0.0, 1.0),
) -> pd.DataFrame:
    """Mean of a per-network number per group, with a 95% normal interval (i.i.d. networks).

    Used for fractions of units: units of one network are not independent, networks are, so
    the interval comes from the spread of the per-network fractions. The interval is clipped
    to ``bounds`` (a fraction's by default; ``(None, None)`` for a loss).
    """
    valid = frame[~frame["diverged"].astype(bool)]
    grouped = valid.groupby(list(by), sort=True)[value]
    table = grouped.agg(mean="mean", sd="std", n="count").reset_index()
    half = Z95 * table["sd"].fillna(0.0) / np.sqrt(table["n"])
    table["mean_lo"] = (table["mean"] - half).clip(lower=bounds[0])
    table["mean_hi"] = (table["mean"] + half).clip(upper=bounds[1])
    return table.drop(columns="sd")


def interval_lines(
    ax,
    table: pd.DataFrame,
    x: str,
    y: str,
    hue: str | None = None,
    *,
    lo: str | None = None,
    hi: str | None = None,
    label_format: str = "{}",
    band: bool = False,
    order: list | None = None,
    max_markers: int | None = None,
) -> None:
    """Points joined by lines, one series per level of ``hue``, with interval bars or bands.

    ``order``: every level that may appear, in the order to draw them; a level's style (color,
    marker) is that of its place there, so it is the same in every figure (default: the levels
    present, sorted). ``max_markers``: with ``band``, mark about that many points per line.
    """
    lo, hi = lo or f"{y}_lo", hi or f"{y}_hi"
    present = sorted(table[hue].unique()) if hue else [None]
    style = plots.styles(order or present)
    levels = [level for level in order if level in set(present)] if order else present
    for level in levels:
        part = table if hue is None else table[table[hue] == level]
        part = part.sort_values(x)
        s = style[level]
        kwargs = {"color": s["color"], "marker": s["marker"], "linestyle": s["linestyle"]}
        name = None if hue is None else label_format.format(level)
        if band:
            if max_markers:
                kwargs["markevery"] = max(len(part) // max_markers, 1)
            ax.plot(part[x], part[y], label=name, markersize=4, **kwargs)
            ax.fill_between(part[x], part[lo], part[hi], color=s["color"], alpha=0.2, lw=0)
        else:
            ax.errorbar(
                part[x],
                part[y],
                yerr=[part[y] - part[lo], part[hi] - part[y]],
                label=name,
                capsize=3,
                markersize=5,
                **kwargs,
            )


def save_figure(fig, out: Path, stem: str) -> Path:
    """Write ``out/figures/<stem>.png`` (150 dpi, PNG only to keep the repository small)."""
    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.png"
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    say(f"wrote {path.relative_to(out.parent) if out.parent in path.parents else path}")
    return path


def write_table(table: pd.DataFrame, out: Path, name: str) -> Path:
    path = out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.6g")
    say(f"wrote {path}")
    return path


# The network counts of a run's summary.csv that a study's text may quote, each proportion with
# its Wilson bounds: dead at init, dead at the end, revived (dead at a logged step and alive at a
# later one), revived among those dead at init, diverged.
RUN_COLUMNS = [
    f"{prefix}{event}{suffix}"
    for event in ("dead_init", "dead_end", "revived", "revived_dead_init", "diverged")
    for prefix, suffix in (("k_", ""), ("p_", ""), ("p_", "_lo"), ("p_", "_hi"))
]


def runs_summary(folders: dict[str, Path]) -> pd.DataFrame:
    """A row per (part, setting) of the runs behind a study: the settings that vary, ``n_inits``,
    ``n_valid`` and :data:`RUN_COLUMNS`, read from each run folder's ``summary.csv``.

    ``folders``: ``{part: folder}``. Committed beside the study's own tables as
    ``runs_summary.csv``, so that a count the text quotes from the runs (networks dead at the
    end, revived) is in a committed table although ``runs.parquet`` is not.
    """
    parts = [
        results.ResultsFolder.open(folder).summary().assign(part=part)
        for part, folder in folders.items()
    ]
    table = pd.concat(parts, ignore_index=True)
    settings = [c for c in analysis.free_axes(table, []) if c != "part"]
    counts = [c for c in ["n_inits", "n_valid", *RUN_COLUMNS] if c in table]
    return table[["part", *settings, *counts]]


def theme() -> None:
    import seaborn as sns

    sns.set_theme(context="paper", style="ticks", palette="colorblind", font_scale=1.0)


def exit_main(main) -> None:
    sys.exit(main())
