"""Remedies study, the equal tuning budget (issue 24, item 2).

Each remedy with a strength, and the baseline's learning rate, is tried at the same number of
values (:func:`grids`: four each, stated); plain SGD searches the same learning rates as Adam, so
it runs at its own best rate. Every value is a variant of the task's config, on the same networks
(shared draws). The value with the lowest mean final loss on the first half of the networks (init
indices below ``n_inits / 2``), among values where at most :data:`MAX_DIVERGED` of them diverged,
is then reported on the other half, paired with the baseline's same networks: choosing and
reporting on disjoint networks keeps the tuned rows free of the choice's optimism.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd
import reproduce_common as common

from study import config

# The learning rates tried: the task's own times these (Adam's and SGD's alike).
RATE_FACTORS = (0.1, 1.0, 10.0, 100.0)
# A value where more than this share of the choosing half diverged is not chosen.
MAX_DIVERGED = 0.01
# The tuned rows' labels in the tables and figures.
LABELS = {
    "baseline_tuned": "baseline, rate tuned",
    "sgd_tuned": "SGD, rate tuned",
    "leaky_relu_0_01_tuned": "leaky ReLU, slope tuned",
    "bias_0_01_tuned": "bias, tuned",
    "redo_tuned": "ReDo, period tuned",
    "shrink_perturb_tuned": "shrink and perturb, shrink tuned",
    "l2_init_tuned": "L2-init, lambda tuned",
    "warmup_tuned": "warmup, length tuned",
    "weight_decay_tuned": "weight decay, tuned",
}
TUNING_COLUMNS = ["task", "remedy", "key", "value", "variant", "n_valid", "p_diverged"]
TUNING_COLUMNS += ["p_dead_end", "final_loss", "final_loss_lo", "final_loss_hi", "chosen"]


def grids(base: Mapping[str, Any]) -> dict[str, tuple[str, list[Any]]]:
    """Each tuned remedy's key and its four values for a task whose baseline is ``base`` (flat
    setting values). The values bracket the source's where there is one (SOURCES in
    scripts/reproduce_remedies.py); the period and the warmup scale with the task's run."""
    rate, steps, every = base["train.learning_rate"], base["train.steps"], base["train.log_every"]
    rates = [rate * factor for factor in RATE_FACTORS]
    return {
        "baseline": ("train.learning_rate", rates),
        "sgd": ("train.learning_rate", rates),
        "leaky_relu_0_01": ("model.leaky_slope", [0.003, 0.01, 0.03, 0.1]),
        "bias_0_01": ("model.bias_scale", [0.001, 0.01, 0.1, 1.0]),
        "redo": ("train.intervention_every", [every * m for m in (1, 5, 10, 25)]),
        "shrink_perturb": ("train.shrink", [0.4, 0.6, 0.8, 0.95]),
        "l2_init": ("train.l2_init", [0.002, 0.006, 0.02, 0.06]),
        "warmup": ("train.warmup_steps", [round(steps * f) for f in (0.03, 0.1, 0.3, 1.0)]),
        "weight_decay": ("train.weight_decay", [1e-4, 1e-3, 1e-2, 1e-1]),
    }


def grid_variants(given: Mapping[str, Any]) -> tuple[dict[str, dict], dict[str, tuple]]:
    """The variants a task's config ``given`` needs for its grids, and per tuned remedy its key
    and its ``(value, variant)`` pairs. A grid point that is the baseline or one of the config's
    variants is that one (the engine refuses two variants alike), not a new variant."""
    base = config.flatten({k: v for k, v in given.items() if k not in ("variants", "reference")})
    written = {name: config.flatten(table) for name, table in given["variants"].items()}
    known = {"baseline": {}, **written}

    def full(overrides: Mapping[str, Any]) -> str:
        return json.dumps(base | dict(overrides), sort_keys=True)

    by_settings = {full(overrides): name for name, overrides in known.items()}
    new, members = {}, {}
    for remedy, (key, values) in grids(base).items():
        if remedy not in known:
            continue  # not run on this task (the engine refuses it, or it is the baseline)
        members[remedy] = (key, [])
        for index, value in enumerate(values):
            overrides = known[remedy] | {key: value}
            name = by_settings.setdefault(full(overrides), f"tune-{remedy}-{index}")
            if name not in known:
                new[name] = config.nest(overrides)
            members[remedy][1].append((value, name))
    return new, members


def halves(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(choosing, reporting)``: the networks with init index below half the count, the rest."""
    first = runs["init"] < (runs["init"].max() + 1) // 2
    return runs[first], runs[~first]


def tuning_table(task: str, runs: pd.DataFrame, members: Mapping[str, tuple]) -> pd.DataFrame:
    """Every grid point on the choosing half: its share diverged, P(dead at end) and mean final
    loss (95% interval), and ``chosen`` for each remedy's best (:data:`MAX_DIVERGED`)."""
    choosing, _ = halves(runs)
    rows = []
    for remedy, (key, points) in members.items():
        for value, variant in points:
            part = choosing[choosing["variant"] == variant]
            valid = part[~part["diverged"].astype(bool)]
            mean = common.mean_table(valid.assign(all=0), ["all"], "final_loss", (None, None))
            mean = mean.reindex([0])  # NaN where every network of the half diverged
            row = {"task": task, "remedy": remedy, "key": key, "value": value}
            row |= {"variant": variant, "n_valid": len(valid)}
            row |= {"p_diverged": part["diverged"].mean(), "p_dead_end": part["dead_end"].mean()}
            row |= {f"final_loss{s}": mean[f"mean{s}"].iloc[0] for s in ("", "_lo", "_hi")}
            rows.append(row)
    table = pd.DataFrame(rows, columns=TUNING_COLUMNS[:-1])
    eligible = table[table["p_diverged"] <= MAX_DIVERGED]
    best = eligible.groupby("remedy", sort=False)["final_loss"].idxmin()
    return table.assign(chosen=table.index.isin(best.to_numpy()))[TUNING_COLUMNS]


def tuned_runs(runs: pd.DataFrame, tuning: pd.DataFrame) -> pd.DataFrame:
    """The reporting half's baseline and, per tuned remedy, its chosen variant's runs renamed
    ``<remedy>_tuned`` (none where the grid's best is the baseline itself: nothing to compare)."""
    _, reporting = halves(runs)
    parts = [reporting[reporting["variant"] == "baseline"]]
    for chosen in tuning[tuning["chosen"] & (tuning["variant"] != "baseline")].itertuples():
        rows = reporting[reporting["variant"] == chosen.variant]
        parts.append(rows.assign(variant=f"{chosen.remedy}_tuned"))
    return pd.concat(parts, ignore_index=True)


def untuned(tuning: pd.DataFrame) -> dict[str, str]:
    """The tuned rows with nothing to compare, each with why: the grid's best is the baseline."""
    best = tuning[tuning["chosen"] & (tuning["variant"] == "baseline")]
    return {
        f"{row.remedy}_tuned": f"same as the baseline: the grid's best is the baseline's own "
        f"{row.key} = {row.value:g}"
        for row in best.itertuples()
    }


def described(tuning: pd.DataFrame) -> pd.DataFrame:
    """Per tuned remedy: the chosen value and the grid, as the summary's ``source`` says them."""
    rows = {}
    for remedy, points in tuning.groupby("remedy", sort=False):
        chosen = points[points["chosen"]]
        values = ", ".join(f"{v:g}" for v in points["value"])
        value = chosen["value"].iloc[0] if len(chosen) else float("nan")
        rows[f"{remedy}_tuned"] = {
            "tuned_value": value,
            "source": f"best of {points['key'].iloc[0]} in {{{values}}} by mean final loss on "
            f"the first half of the networks, reported on the second half",
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["tuned_value", "source"])
