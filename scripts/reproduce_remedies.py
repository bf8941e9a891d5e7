"""Remedies study (issue 12, item 2): what prevents dying ReLU, and at what cost.

Every remedy is a set of config overrides (``REMEDIES``) applied to each task's baseline
(``TASKS``); nothing is tuned to win. For every (task, remedy): P(dead at init), P(dead at end),
P(revived) and P(inactive at end) with 95% Wilson intervals (and which way revived networks came
back: P(revived by training), P(revived by intervention)), the initial and final loss and the final
accuracy with 95% normal intervals, and the change in P(dead at end) from the task's baseline with
a Newcombe interval and a Fisher/z p-value, Holm-adjusted across the whole table. Then the two
CS231n claims: does a 0.01 bias consistently lower death (every task, three learning rates, and a
3 x 64 network), and what share of a 3 x 64 network's units is dead after training against the
learning rate (where does it cross 40%)?

Each task's config (``study/configs/remedies_<task>.toml``) is the baseline plus the numeric
axes swept in the same compile: its bias is ``constant`` with ``bias_scale`` 0 (the zero bias,
bit for bit) so that the constant-bias remedies are numeric values of the baseline's program, and
its learning rate lists the smaller one and a larger one. Remedies that share the baseline's
structural keys run in that one ``study run``; each other structural combination is one more
``study run CONFIG --out results/remedies/runs/<task>/<group> --set ...`` with the numeric axes
pinned to the values its remedies need. A remedy the engine refuses for a task (``study.load_study``
raises) is recorded as not applicable with the engine's reason; one that changes nothing (He
init on a task that is already He) as the baseline itself.

Adding a remedy is one more entry of ``REMEDIES``; a remedy the engine does not have yet goes
in ``PENDING`` (not run, listed with that note) until it has its keys.

Writes ``results/remedies/``: ``summary.csv`` (a row per task and remedy), ``bias_claim.csv``,
``lr_claim.csv``, ``claims.csv`` (the verdicts) and ``figures/*.png``; runs in ``runs/``.

Usage: ``python scripts/reproduce_remedies.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import reproduce_common as common
from scipy import stats

import study
from study import analysis, config

BASELINE = "baseline"
# A remedy: config overrides relative to the task's baseline. A value may be a function of the
# baseline's value of that key (the smaller learning rate is a tenth of each task's own).
REMEDIES: dict[str, dict[str, object]] = {
    "standardized data": {"data.standardize": True},
    "leaky ReLU 0.01": {"model.activation": "leaky_relu", "model.leaky_slope": 0.01},
    "leaky ReLU 0.1": {"model.activation": "leaky_relu", "model.leaky_slope": 0.1},
    "ELU": {"model.activation": "elu"},
    "bias 0.01": {"model.bias_init": "constant", "model.bias_scale": 0.01},
    "bias 0.1": {"model.bias_init": "constant", "model.bias_scale": 0.1},
    "He init": {"model.init": "he_normal"},
    "RAI": {"model.init": "rai"},
    "learning rate / 10": {"train.learning_rate": lambda base: base / 10},
    "SGD instead of Adam": {"train.optimizer": "sgd"},
    # Issue 12, item 1. The strengths are the papers' usual values, untuned; interventions every
    # 100 steps (a multiple of every task's log_every, below its steps). Layer norm at width 1 is
    # refused by the engine, and that task's row then says so.
    "flip_dead": {"model.flip_dead": True},
    "batch norm": {"model.norm": "batch"},
    "layer norm": {"model.norm": "layer"},
    "ReDo": {"train.intervention": "redo", "train.intervention_every": 100, "train.redo_tau": 0.0},
    "shrink and perturb": {
        "train.intervention": "shrink_perturb",
        "train.intervention_every": 100,
        "train.shrink": 0.8,
        "train.perturb": 0.1,
    },
    "L2-init": {"train.intervention": "l2_init", "train.l2_init": 0.01},
}
# Remedies the engine does not have yet (none at present): listed in summary.csv with that note.
PENDING: dict[str, dict[str, object]] = {}


@dataclass(frozen=True)
class Task:
    """A task: its config (baseline plus numeric axes) and the baseline's point on those axes."""

    name: str
    config: str
    title: str
    baseline: Mapping[str, object]


TASKS = (
    Task(
        "question",
        "remedies_question.toml",
        "2-1-1 ReLU, features in [1, 3]\nU(-0.05, 0.05), Adam 0.01",
        {"model.bias_scale": 0.0, "train.learning_rate": 0.01},
    ),
    Task(
        "two_layers",
        "remedies_two_layers.toml",
        "two ReLU layers of width 1, centered 2-D\nU(-0.05, 0.05), Adam 0.01",
        {"model.bias_scale": 0.0, "train.learning_rate": 0.01},
    ),
    Task(
        "lu_abs",
        "remedies_lu_abs.toml",
        "|x| fit, width 2, depth 10 (Lu et al.)\nHe normal, Adam 0.001",
        {"model.bias_scale": 0.0, "train.learning_rate": 0.001},
    ),
)
CS231N_CONFIG = "remedies_cs231n.toml"
CS231N_SHARE = 0.4
BIAS_CLAIM = "a 0.01 bias consistently lowers death"
LR_CLAIM = "as much as 40% of the network dead at a high learning rate"
# A learning rate where fewer runs than this did not diverge says nothing about the survivors'
# dead units (one survivor of 40 is no estimate): it is kept in the tables, but not used for the
# 40% crossing, the bias comparison or the figure.
MIN_VALID = 10
TINY_OVERRIDES = ("train.steps=20", "train.log_every=10")
TINY_TASKS = ("question",)
# The baseline's compile only; layer norm is refused at the question's width 1 (not run).
TINY_REMEDIES = ("bias 0.01", "bias 0.1", "learning rate / 10", "layer norm")
TINY_CS231N = (
    "model.width=4",
    "train.steps=20",
    "train.log_every=10",
    "train.learning_rate=[0.1, 3.0]",
)


# --------------------------------------------------------------------------------------------
# From the remedies table to `study run` calls.
# --------------------------------------------------------------------------------------------


def toml_value(value) -> str:
    """A value as ``--set KEY=VALUE`` takes it (TOML syntax)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def flat_config(task: Task) -> dict[str, object]:
    """The task's config as ``{"section.key": value}`` with the numeric axes at the baseline."""
    given = config.flatten(config.read_toml(common.CONFIGS / task.config))
    flat = {name: value for name, value in given.items() if name in config.SETTING_KEYS}
    flat.update(task.baseline)
    return flat


def remedy_values(baseline: Mapping[str, object], overrides: Mapping[str, object]) -> dict:
    """The remedy's setting: the baseline's values with the overrides (callables applied)."""
    values = dict(baseline)
    for key, value in overrides.items():
        values[key] = value(baseline[key]) if isinstance(value, Callable) else value
    return values


def refusal(task: Task, values: Mapping[str, object]) -> str | None:
    """The engine's one-line reason if it refuses this setting, else None."""
    given = config.flatten(config.read_toml(common.CONFIGS / task.config))
    try:
        study.load_study(config.nest({**given, **values}))
    except study.ConfigError as error:
        return str(error).splitlines()[0]
    return None


def structural(name: str) -> bool:
    return name not in config.KEYS or config.KEYS[name].structural


@dataclass
class Group:
    """One ``study run``: structural overrides of the config, numeric values to sweep."""

    structure: dict[str, object]
    numeric: dict[str, set] = field(default_factory=dict)

    @property
    def folder_name(self) -> str:
        if not self.structure:
            return BASELINE
        parts = [f"{k.partition('.')[2]}-{v}" for k, v in sorted(self.structure.items())]
        return "__".join(parts).lower()

    def overrides(self) -> list[str]:
        sets = [f"{k}={toml_value(v)}" for k, v in sorted(self.structure.items())]
        for key, values in sorted(self.numeric.items()):
            values = sorted(values)
            sets.append(f"{key}={toml_value(values if len(values) > 1 else values[0])}")
        return sets


@dataclass
class Plan:
    """A task's runs: the groups, each remedy's group and setting, and the remedies not run."""

    groups: list[Group]
    members: dict[str, tuple[Group, dict]]
    notes: dict[str, str]
    numeric_keys: list[str]
    baseline: dict[str, object]


def plan(task: Task, remedies: Mapping[str, Mapping], pending: Mapping[str, Mapping]) -> Plan:
    """Group the task's remedies by their structural keys (one ``study run`` per group).

    Every numeric key that is a sweep axis of the task config or that some remedy changes is
    pinned in every group to the values its members need; the baseline's group keeps the config's
    axes too (the learning rates of the bias claim).
    """
    baseline = flat_config(task)
    for key in {key for overrides in remedies.values() for key in overrides}:
        if not structural(key):  # a numeric key the config leaves out: at its default
            baseline.setdefault(key, config.KEYS[key].default)
    axes = {k: v for k, v in config_axes(task).items() if not structural(k)}
    settings, notes = {}, {}
    for name, overrides in {BASELINE: {}, **remedies}.items():
        values = remedy_values(baseline, overrides)
        reason = refusal(task, values)
        if name != BASELINE and values == baseline:
            notes[name] = "same as the baseline for this task"
        elif reason is not None:
            notes[name] = f"refused by the engine: {reason}"
        else:
            settings[name] = values
    notes.update({name: "not yet in the engine" for name in pending})
    numeric_keys = sorted(
        set(axes)
        | {k for v in settings.values() for k in v if not structural(k) and v[k] != baseline[k]}
    )
    groups: dict[tuple, Group] = {}
    members = {}
    for name, values in settings.items():
        changed = {k: v for k, v in values.items() if structural(k) and v != baseline.get(k)}
        signature = tuple(sorted((k, str(v)) for k, v in changed.items()))
        if signature not in groups:
            groups[signature] = Group(
                changed, {k: set(axes.get(k, ())) if not changed else set() for k in numeric_keys}
            )
        group = groups[signature]
        for key in numeric_keys:
            group.numeric[key].add(values[key])
        members[name] = (group, values)
    return Plan(list(groups.values()), members, notes, numeric_keys, baseline)


def config_axes(task: Task) -> dict[str, list]:
    """The config's sweep axes (its list-valued keys)."""
    given = config.flatten(config.read_toml(common.CONFIGS / task.config))
    return {
        name: value
        for name, value in given.items()
        if name in config.SETTING_KEYS and isinstance(value, list)
    }


# --------------------------------------------------------------------------------------------
# Statistics (pandas and scipy only; no JAX).
# --------------------------------------------------------------------------------------------


def mean_interval(values: pd.Series) -> tuple[float, float, float]:
    """Mean with a 95% normal interval (independent networks)."""
    values = values.dropna()
    if len(values) == 0:
        return np.nan, np.nan, np.nan
    half = common.Z95 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return values.mean(), values.mean() - half, values.mean() + half


def mean_difference(first: pd.Series, second: pd.Series) -> tuple[float, float, float, float]:
    """``mean(second) - mean(first)`` with a 95% Welch normal interval and Welch's p-value."""
    first, second = first.dropna(), second.dropna()
    if len(first) < 2 or len(second) < 2:
        return np.nan, np.nan, np.nan, np.nan
    difference = second.mean() - first.mean()
    se = np.hypot(
        first.std(ddof=1) / np.sqrt(len(first)), second.std(ddof=1) / np.sqrt(len(second))
    )
    if se == 0:
        return difference, difference, difference, 1.0 if difference == 0 else 0.0
    p_value = stats.ttest_ind(second, first, equal_var=False).pvalue
    return difference, difference - common.Z95 * se, difference + common.Z95 * se, float(p_value)


def some_layer_all(runs: pd.DataFrame, kind: str, when: str) -> pd.Series:
    """Per network: some hidden layer has every unit ``kind`` (dead, inactive) at ``when``."""
    width = runs["model.width"]
    columns = [c for c in runs.columns if c.startswith(f"{kind}_units_{when}_l")]
    return pd.concat([runs[c] == width for c in columns], axis=1).any(axis=1)


def select(frame: pd.DataFrame, values: Mapping[str, object], keys) -> pd.DataFrame:
    mask = np.ones(len(frame), bool)
    for key in keys:
        mask &= np.isclose(frame[key].to_numpy(float), float(values[key]))
    return frame[mask]


def proportion_columns(name: str, k: int, n: int) -> dict:
    lo, hi = analysis.wilson_interval(k, n)
    return {
        f"k_{name}": k,
        f"p_{name}": k / n if n else np.nan,
        f"p_{name}_lo": lo,
        f"p_{name}_hi": hi,
    }


def remedy_row(summary: pd.DataFrame, runs: pd.DataFrame, values: Mapping, numeric: list) -> dict:
    """One (task, remedy): counts and proportions from summary.csv, means from the runs."""
    setting = select(summary, values, numeric)
    assert len(setting) == 1, f"expected one setting for {values}, found {len(setting)}"
    setting = setting.iloc[0]
    mine = select(runs, values, numeric)
    valid = mine[~mine["diverged"].astype(bool)]
    n = int(setting["n_valid"])
    alive_at_init = valid[~valid["dead_init"].astype(bool)]
    row = {"n_inits": int(setting["n_inits"]), "n_valid": n}
    row.update(proportion_columns("diverged", int(setting["k_diverged"]), row["n_inits"]))
    for event in ("dead_init", "dead_end", "revived"):
        row.update(proportion_columns(event, int(setting[f"k_{event}"]), n))
    # Which way revived networks came back (without an intervention: by training, if at all).
    for way in ("revived_by_training", "revived_by_intervention"):
        row.update(proportion_columns(way, int(valid[way].sum()), n))
    row.update(
        proportion_columns(
            "died_in_training", int(alive_at_init["dead_end"].sum()), len(alive_at_init)
        )
    )
    row.update(
        proportion_columns("inactive_end", int(some_layer_all(valid, "inactive", "end").sum()), n)
    )
    for metric in ("initial_loss", "final_loss", "final_accuracy"):
        row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = mean_interval(valid[metric])
    return row, valid


def summary_table(task_results: list[dict]) -> pd.DataFrame:
    """A row per (task, remedy) with the change from the task's baseline; Holm over the table."""
    rows = []
    for result in task_results:
        base, base_runs = result["rows"][BASELINE]
        for name, (row, valid) in result["rows"].items():
            entry = {"task": result["task"].name, "remedy": name, "note": ""}
            entry["overrides"] = result["overrides"][name]
            entry.update(row)
            if name == BASELINE:  # the baseline is not compared with itself
                rows.append(entry)
                continue
            for event in ("dead_init", "dead_end"):
                k1, n1 = base[f"k_{event}"], base["n_valid"]
                k2, n2 = row[f"k_{event}"], row["n_valid"]
                lo, hi = analysis.newcombe_interval(k1, n1, k2, n2)
                entry[f"diff_p_{event}"] = k2 / n2 - k1 / n1
                entry[f"diff_p_{event}_lo"], entry[f"diff_p_{event}_hi"] = lo, hi
            entry["test"], entry["p_value"] = analysis.two_proportion_test(
                base["k_dead_end"], base["n_valid"], row["k_dead_end"], row["n_valid"]
            )
            for metric in ("final_loss", "final_accuracy"):
                d, lo, hi, _ = mean_difference(base_runs[metric], valid[metric])
                entry[f"diff_{metric}"], entry[f"diff_{metric}_lo"] = d, lo
                entry[f"diff_{metric}_hi"] = hi
            rows.append(entry)
        for name, note in result["notes"].items():
            rows.append({"task": result["task"].name, "remedy": name, "note": note})
    table = pd.DataFrame(rows)
    tested = table["p_value"].notna()
    table["p_holm"] = np.nan
    table.loc[tested, "p_holm"] = analysis.holm(table.loc[tested, "p_value"])
    order = ["task", "remedy", "overrides", "n_inits", "n_valid"]
    return table[order + [c for c in table.columns if c not in order and c != "note"] + ["note"]]


def dead_unit_share(runs: pd.DataFrame) -> pd.Series:
    """Per network: the share of hidden units (all layers pooled) dead at the end."""
    columns = [c for c in runs.columns if c.startswith("dead_units_end_l")]
    return runs[columns].sum(axis=1) / (len(columns) * runs["model.width"])


def lr_claim_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Dead-unit share after training per (bias, learning rate) of the deep network."""
    rows = []
    for (bias, lr), part in runs.groupby(["model.bias_scale", "train.learning_rate"]):
        valid = part[~part["diverged"].astype(bool)]
        share, lo, hi = mean_interval(dead_unit_share(valid))
        row = {"model.bias_scale": bias, "train.learning_rate": lr, "n_inits": len(part)}
        row["n_valid"] = len(valid)
        row.update(proportion_columns("diverged", int(part["diverged"].sum()), len(part)))
        row.update({"dead_unit_share": share, "dead_unit_share_lo": lo, "dead_unit_share_hi": hi})
        for column in sorted(c for c in part.columns if c.startswith("dead_units_end_l")):
            layer = column.rpartition("_")[2]
            row[f"dead_unit_share_{layer}"] = (valid[column] / valid["model.width"]).mean()
        row["final_accuracy"] = valid["final_accuracy"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def crossing(table: pd.DataFrame, column: str, level: float) -> float:
    """The learning rate where ``column`` first reaches ``level`` (log-linear interpolation).

    Only learning rates with at least ``MIN_VALID`` runs that did not diverge count; ``inf``
    when the level is not reached among them.
    """
    table = table[table["n_valid"] >= MIN_VALID].dropna(subset=[column])
    table = table.sort_values("train.learning_rate")
    lr, share = table["train.learning_rate"].to_numpy(), table[column].to_numpy()
    above = np.flatnonzero(share >= level)
    if len(above) == 0:
        return np.inf
    i = above[0]
    if i == 0:
        return float(lr[0])
    t = (level - share[i - 1]) / (share[i] - share[i - 1])
    return float(np.exp(np.log(lr[i - 1]) + t * (np.log(lr[i]) - np.log(lr[i - 1]))))


def bias_claim_table(task_results: list[dict], deep_runs: pd.DataFrame) -> pd.DataFrame:
    """Bias 0.01 against zero bias at every learning rate of every task; Holm over the table.

    For the three tasks the metric is P(network dead at end) (Newcombe interval, Fisher/z test);
    for the 3 x 64 network, where whole networks do not die, the mean share of dead units
    (Welch interval and test).
    """
    rows = []
    for result in task_results:
        runs = result["baseline_runs"]
        runs = runs[~runs["diverged"].astype(bool)]
        for lr, part in runs.groupby("train.learning_rate"):
            zero = part[np.isclose(part["model.bias_scale"], 0.0)]
            small = part[np.isclose(part["model.bias_scale"], 0.01)]
            k1, n1 = int(zero["dead_end"].sum()), len(zero)
            k2, n2 = int(small["dead_end"].sum()), len(small)
            lo, hi = analysis.newcombe_interval(k1, n1, k2, n2)
            _, p_value = analysis.two_proportion_test(k1, n1, k2, n2)
            rows.append(
                {
                    "task": result["task"].name,
                    "train.learning_rate": lr,
                    "metric": "p_dead_end",
                    "zero_bias": k1 / n1,
                    "bias_0.01": k2 / n2,
                    "difference": k2 / n2 - k1 / n1,
                    "difference_lo": lo,
                    "difference_hi": hi,
                    "n_zero_bias": n1,
                    "n_bias_0.01": n2,
                    "p_value": p_value,
                }
            )
    deep = deep_runs[~deep_runs["diverged"].astype(bool)]
    for lr, part in deep.groupby("train.learning_rate"):
        zero = dead_unit_share(part[np.isclose(part["model.bias_scale"], 0.0)])
        small = dead_unit_share(part[np.isclose(part["model.bias_scale"], 0.01)])
        d, lo, hi, p_value = mean_difference(zero, small)
        if min(len(zero), len(small)) < MIN_VALID:
            d = lo = hi = p_value = np.nan
        rows.append(
            {
                "task": "deep_3x64",
                "train.learning_rate": lr,
                "metric": "dead_unit_share",
                "zero_bias": zero.mean(),
                "bias_0.01": small.mean(),
                "difference": d,
                "difference_lo": lo,
                "difference_hi": hi,
                "n_zero_bias": len(zero),
                "n_bias_0.01": len(small),
                "p_value": p_value,
            }
        )
    table = pd.DataFrame(rows)
    tested = table["p_value"].notna()
    table["p_holm"] = np.nan
    table.loc[tested, "p_holm"] = analysis.holm(table.loc[tested, "p_value"])
    return table


def claims_table(bias: pd.DataFrame, lr: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The two CS231n claims with a verdict each, from the two claim tables."""
    tested = bias[bias["p_holm"].notna()]
    lower = tested[(tested["p_holm"] < alpha) & (tested["difference"] < 0)]
    higher = tested[(tested["p_holm"] < alpha) & (tested["difference"] > 0)]
    if len(lower) == len(tested):
        verdict = "consistent improvement"
    elif len(lower):
        verdict = "not consistent"
    else:
        verdict = "no improvement shown"
    bias_text = (
        f"{verdict}: a 0.01 bias lowers death significantly (Holm {alpha:g}) in {len(lower)} of "
        f"{len(tested)} (task, learning rate) cells, raises it in {len(higher)}, no clear change "
        f"in {len(tested) - len(lower) - len(higher)}"
    )
    zero = lr[np.isclose(lr["model.bias_scale"], 0.0)].sort_values("train.learning_rate")
    zero = zero[zero["n_valid"] >= MIN_VALID]
    point = crossing(zero, "dead_unit_share", CS231N_SHARE)
    if zero.empty or (zero["k_diverged"] > 0).all():
        lr_text = f"not measured: no learning rate where at least {MIN_VALID} runs never diverged"
        return pd.DataFrame(
            [
                {"claim": BIAS_CLAIM, "verdict": bias_text},
                {"claim": LR_CLAIM, "verdict": lr_text},
            ]
        )
    stable = zero[zero["k_diverged"] == 0].iloc[-1]
    stable_text = (
        f"at the largest rate where no run diverged ({stable['train.learning_rate']:g}) the share "
        f"is {stable['dead_unit_share']:.3f} [{stable['dead_unit_share_lo']:.3f}, "
        f"{stable['dead_unit_share_hi']:.3f}]"
    )
    if np.isfinite(point):
        first = zero[zero["train.learning_rate"] >= point].iloc[0]
        lr_text = (
            f"reached, at the edge of divergence: the share of dead units crosses 0.4 at a "
            f"learning rate of about {point:.3g} (interpolated); at "
            f"{first['train.learning_rate']:g} it is {first['dead_unit_share']:.3f} "
            f"[{first['dead_unit_share_lo']:.3f}, "
            f"{first['dead_unit_share_hi']:.3f}] with {first['p_diverged']:.0%} of runs diverged; "
            + stable_text
        )
    else:
        peak = zero.loc[zero["dead_unit_share"].idxmax()]
        lr_text = (
            f"not reached by runs that did not diverge: the largest share of dead units is "
            f"{peak['dead_unit_share']:.3f} [{peak['dead_unit_share_lo']:.3f}, "
            f"{peak['dead_unit_share_hi']:.3f}] at learning rate {peak['train.learning_rate']:g} "
            f"({peak['p_diverged']:.0%} of runs diverged there); " + stable_text
        )
    return pd.DataFrame(
        [
            {"claim": BIAS_CLAIM, "verdict": bias_text},
            {"claim": LR_CLAIM, "verdict": lr_text},
        ]
    )


# --------------------------------------------------------------------------------------------
# Figures (drawing only).
# --------------------------------------------------------------------------------------------


def figure_changes(table: pd.DataFrame, titles: Mapping[str, str], out: Path, alpha=0.05) -> None:
    """Every remedy's change in P(dead at end) from its task's baseline, a panel per task."""
    run = table[table["remedy"].ne(BASELINE) & table["p_dead_end"].notna()]
    tasks = list(dict.fromkeys(run["task"]))
    order = list(REMEDIES)  # the table's order, related remedies together
    remedies = sorted(
        dict.fromkeys(run["remedy"]), key=lambda r: order.index(r) if r in order else len(order)
    )
    notes = table.set_index(["task", "remedy"])["note"].fillna("")
    fig, axes = plt.subplots(
        1,
        len(tasks),
        figsize=(4.2 * len(tasks), 0.32 * len(remedies) + 1.6),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    palette = common.plots.styles(["significant", "not significant"])
    for ax, task in zip(axes[0], tasks, strict=True):
        part = run[run["task"] == task].set_index("remedy")
        for position, remedy in enumerate(remedies):
            if remedy not in part.index:  # not run: why, without the engine's reason
                why = notes.get((task, remedy), "").partition(":")[0] or "n/a"
                box = {"facecolor": "white", "edgecolor": "none", "pad": 1}
                ax.text(
                    0, position, why, ha="center", va="center", fontsize=7, color="0.4", bbox=box
                )
                continue
            row = part.loc[remedy]
            kind = "significant" if row["p_holm"] < alpha else "not significant"
            s = palette[kind]
            ax.errorbar(
                row["diff_p_dead_end"],
                position,
                xerr=[
                    [row["diff_p_dead_end"] - row["diff_p_dead_end_lo"]],
                    [row["diff_p_dead_end_hi"] - row["diff_p_dead_end"]],
                ],
                fmt=s["marker"],
                color=s["color"],
                markerfacecolor=s["color"] if kind == "significant" else "white",
                capsize=3,
                label=f"Holm p {'<' if kind == 'significant' else '>='} {alpha:g}",
            )
        base = table[(table["task"] == task) & (table["remedy"] == BASELINE)].iloc[0]
        ax.axvline(0, color="black", lw=0.8)
        ax.axvline(-base["p_dead_end"], color="black", ls=":", lw=1.2, label="all death removed")
        ax.set_xlim(-1.02, 1.02)
        ax.set_yticks(range(len(remedies)), remedies)
        ax.invert_yaxis()
        ax.set_xlabel("change in P(dead at end) vs baseline")
        ax.set_title(
            f"{titles[task]}\nbaseline {base['p_dead_end']:.2f}, n = {int(base['n_valid'])} "
            f"per remedy",
            fontsize=8,
        )
    handles, labels = axes[0][-1].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes[0][-1].legend(
        unique.values(),
        unique.keys(),
        fontsize=7,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    common.save_figure(fig, out, "remedies_dead_end_change")


def figure_claims(bias: pd.DataFrame, lr: pd.DataFrame, out: Path) -> None:
    """(a) dead-unit share of a 3 x 64 network against the learning rate; (b) the 0.01 bias."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9), layout="constrained")
    kept = lr[lr["n_valid"] >= MIN_VALID]
    shares = kept.assign(bias=[f"bias {b:g}" for b in kept["model.bias_scale"]])
    common.interval_lines(
        left,
        shares,
        "train.learning_rate",
        "dead_unit_share",
        "bias",
        lo="dead_unit_share_lo",
        hi="dead_unit_share_hi",
        band=True,
    )
    zero = lr[np.isclose(lr["model.bias_scale"], 0.0)].sort_values("train.learning_rate")
    left.plot(
        zero["train.learning_rate"],
        zero["p_diverged"],
        color="0.4",
        ls="--",
        lw=1,
        label="share of runs diverged (bias 0)",
    )
    left.axhline(CS231N_SHARE, color="black", ls=":", lw=1.2, label="CS231n: 40%")
    left.set_xscale("log")
    left.set_ylim(-0.02, 1.02)
    left.set_xlabel("learning rate (SGD)")
    left.set_ylabel("share of hidden units dead after training")
    left.set_title(
        f"3 hidden layers of 64, He normal, 10-D centered data\n"
        f"n = {int(lr['n_inits'].min())} networks per point; diverged ones left out, and points "
        f"with < {MIN_VALID} left",
        fontsize=8,
    )
    left.legend(fontsize=7, frameon=False)
    deltas = bias[bias["metric"] == "p_dead_end"]
    common.interval_lines(
        right,
        deltas,
        "train.learning_rate",
        "difference",
        "task",
        lo="difference_lo",
        hi="difference_hi",
    )
    right.axhline(0, color="black", lw=0.8)
    right.set_xscale("log")
    right.set_xlabel("learning rate")
    right.set_ylabel("change in P(dead at end)\nbias 0.01 minus zero bias")
    right.set_title("a 0.01 bias against a zero bias, per task and learning rate", fontsize=8)
    right.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    common.save_figure(fig, out, "remedies_cs231n_claims")


# --------------------------------------------------------------------------------------------


def run_task(task: Task, remedies, pending, out: Path, *, tiny: bool, force: bool) -> dict:
    """Run every group of the task through ``study run``; a row per remedy that ran."""
    task_plan = plan(task, remedies, pending)
    result = {"task": task, "rows": {}, "notes": task_plan.notes, "overrides": {}}
    for group in task_plan.groups:
        runs, summary = common.run_config(
            task.config,
            out / "runs" / task.name / group.folder_name,
            overrides=group.overrides() + (list(TINY_OVERRIDES) if tiny else []),
            n_inits=16 if tiny else None,
            force=force,
            quiet=tiny,
        )
        if not group.structure:
            result["baseline_runs"] = runs
        for name, (member, values) in task_plan.members.items():
            if member is not group:
                continue
            result["rows"][name] = remedy_row(summary, runs, values, task_plan.numeric_keys)
            named = remedies.get(name, {})  # the remedy's own keys, even where at their default
            changed = {
                k: v for k, v in values.items() if k in named or v != task_plan.baseline.get(k)
            }
            result["overrides"][name] = "; ".join(
                f"{k}={toml_value(v)}" for k, v in sorted(changed.items())
            )
    return result


def main(argv=None) -> int:
    args = common.parse_args("remedies", __doc__.splitlines()[0], argv)
    common.theme()
    tasks = [t for t in TASKS if not args.tiny or t.name in TINY_TASKS]
    remedies = {k: v for k, v in REMEDIES.items() if not args.tiny or k in TINY_REMEDIES}
    task_results = [
        run_task(task, remedies, PENDING, args.out, tiny=args.tiny, force=args.force)
        for task in tasks
    ]
    table = summary_table(task_results)
    common.write_table(table, args.out, "summary.csv")
    figure_changes(table, {t.name: t.title for t in tasks}, args.out)

    deep_runs, _ = common.run_config(
        CS231N_CONFIG,
        args.out / "runs" / "deep_3x64",
        overrides=TINY_CS231N if args.tiny else (),
        n_inits=MIN_VALID if args.tiny else None,
        force=args.force,
        quiet=args.tiny,
    )
    bias = bias_claim_table(task_results, deep_runs)
    lr = lr_claim_table(deep_runs)
    claims = claims_table(bias, lr)
    common.write_table(bias, args.out, "bias_claim.csv")
    common.write_table(lr, args.out, "lr_claim.csv")
    common.write_table(claims, args.out, "claims.csv")
    figure_claims(bias, lr, args.out)
    for claim in claims.itertuples():
        common.say(f"{claim.claim}: {claim.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
