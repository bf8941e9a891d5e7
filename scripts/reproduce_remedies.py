"""Remedies study (issues 12 and 24): what prevents dying ReLU, and at what cost.

``study/configs/remedies_<task>.toml`` is a task's baseline with each remedy a ``[variants.NAME]``
at its source's strength (``SOURCES``); a remedy that is not a variant of a task is listed with
why (the engine refuses it there, or it is the baseline). ``remedies_tuning`` adds each strength's
grid of four values (an equal tuning budget: the best on one half of the networks, reported on the
other). Per (task, remedy): proportions with Wilson intervals, means with normal ones, and the
change from the baseline (``analysis.compare``: paired on shared draws, with ``saved`` and
``killed`` the networks dead under only the baseline or only the remedy), Holm over the table;
``width_ratio``, for a remedy that leaves the start alike, the paired interval's width over the
unpaired one's; ``remedies_verdicts`` writes them as one line each. Then the CS231n claims: does a
0.01 bias consistently lower death (``remedies_<task>_bias.toml`` and the 3 x 64 network of
``remedies_cs231n.toml`` at several learning rates), is as much as 40% of that network dead at a
high learning rate, and does that cost accuracy (on a noisy XOR task, where it can)?

Writes ``results/remedies/``: ``summary.csv``, ``tuning.csv``, ``verdicts.md``,
``bias_claim.csv``, ``lr_claim.csv``, ``claims.csv``, ``figures/*.png``; runs in
``runs/<config>/``.
Usage: ``python scripts/reproduce_remedies.py [--tiny] [--out DIR] [--force]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import remedies_tuning as tuning
import remedies_verdicts
import reproduce_common as common

import study
from study import analysis, config, data, results, runner, runtime, theory
from study.train import same_start

# Every remedy, in the tables' order (related ones together): its variant name and its label.
REMEDIES = {
    "standardized": "standardized data",
    "leaky_relu_0_01": "leaky ReLU 0.01",
    "leaky_relu_0_1": "leaky ReLU 0.1",
    "elu": "ELU",
    "bias_0_01": "bias 0.01",
    "bias_0_1": "bias 0.1",
    "he_init": "He init",
    "rai": "RAI",
    "lr_tenth": "learning rate / 10",
    "sgd": "SGD instead of Adam",
    "flip_dead": "flip_dead",
    "batch_norm": "batch norm",
    "layer_norm": "layer norm",
    "redo": "ReDo",
    "shrink_perturb": "shrink and perturb",
    "l2_init": "L2-init",
    "warmup": "warmup (a tenth)",
    "weight_decay": "weight decay 0.01",
    "crelu": "CReLU",
    "orthogonal": "orthogonal init",
}
# Where each remedy's strength comes from (summary.csv's `source`): what was read, or that there
# is none. ReDo's dormant threshold is inert on layers of one unit (a unit's score is 0 or 1).
SOURCES = {
    "baseline": "the task's own setting (its config)",
    "standardized": "no strength: zero mean and unit variance per feature",
    "leaky_relu_0_01": "slope 0.01: CS231n notes, neural-networks-1 ('0.01, or so')",
    "leaky_relu_0_1": "slope 0.1: the leaky ReLU compared in Clevert et al. 2016 (via a summary)",
    "elu": "alpha 1: Clevert et al. 2016 (via a summary), JAX's default",
    "bias_0_01": "0.01: CS231n notes, neural-networks-2",
    "bias_0_1": "no published value: ten times the CS231n 0.01",
    "he_init": "no strength: N(0, 2 / fan_in), He et al. 2015",
    "rai": "no strength: Lu et al. 2019 derive every parameter",
    "lr_tenth": "no published value: a tenth of the task's learning rate",
    "sgd": "no published value: plain SGD at the task's learning rate",
    "flip_dead": "no published remedy found: this project's own",
    "batch_norm": "no strength: Ioffe & Szegedy 2015",
    "layer_norm": "no strength: Ba et al. 2016",
    "redo": "tau 0.1: Sokar et al. 2023, Sec. 5 and App. Table 1 (quoted by the first author, "
    "google/dopamine issue 226); period 100 steps: no published value for this setting",
    "shrink_perturb": "shrink 0.4, perturb 0.1: Ash & Adams 2020's code default "
    "(JordanAsh/warm_start run.py), applied once per round there, every 100 steps here",
    "l2_init": "lambda 1e-2 (the gradient gains 0.02 (theta - theta0)): Kumar et al. 2023, "
    "Sec. 5, Tables 3-4",
    "warmup": "no published value for runs this short: a tenth of the steps (Ma & Yarats 2021's "
    "2 / (1 - beta2) = 2000 steps is longer than every run); linear, Goyal et al. 2017",
    "weight_decay": "0.01 decoupled (AdamW): PyTorch's AdamW default (the paper, Loshchilov & "
    "Hutter 2019, not read)",
    "crelu": "no strength: Shang et al. 2016; the next layer reads twice the width",
    "orthogonal": "no strength: Saxe et al. 2014; gain sqrt 2, PyTorch's calculate_gain('relu')",
}
TASKS = {
    "question": "2-1-1 ReLU, features in [1, 3]\nU(-0.05, 0.05), Adam 0.01",
    "two_layers": "two ReLU layers of width 1, centered 2-D\nU(-0.05, 0.05), Adam 0.01",
    "lu_abs": "|x| fit, width 2, depth 10 (Lu et al.)\nHe normal, Adam 0.001",
}
# A figure's name for a table label that is a code name (the tables keep theirs).
SHOWN = {"flip_dead": "flip dead units"}
# What analysis.compare's `test` column names, as a caption says it.
TESTS = {
    "mcnemar": "McNemar's exact test",
    "fisher": "Fisher's exact test",
    "z": "two-proportion z test",
    "paired_t": "paired t test",
    "welch": "Welch's t test",
}
CLAIMS = (
    "a 0.01 bias consistently lowers death",
    "as much as 40% of the network dead at a high learning rate",
    "a learning rate too high costs through dead units",
)
CS231N_SHARE = 0.4
# Where fewer runs than this did not diverge, the survivors say nothing (one of 40 is no
# estimate): kept in the tables, left out of the bias comparison, the 40% crossing, the figure.
MIN_VALID = 10
# --tiny: the question's baseline with three numeric variants (one compiled structure, one chunk
# shape shared with its bias grid) and a 4-wide 3 x 64 network (the second structure).
TINY = ("train.steps=20", "train.log_every=10")
TINY_VARIANTS = ("bias_0_01", "bias_0_1", "lr_tenth")
TINY_CS231N = ("model.width=4", "train.learning_rate=[0.1, 3.0]")
ACCURACY = ["final_accuracy", "final_accuracy_lo", "final_accuracy_hi"]
BIAS_COLUMNS = ["task", "train.learning_rate", "metric", "zero_bias", "bias_0.01", "difference"]
BIAS_COLUMNS += ["difference_lo", "difference_hi", "n_zero_bias", "n_bias_0.01", "paired"]
BIAS_COLUMNS += ["saved", "killed", "test", "p_value"]


def read(name: str, variants=None) -> dict:
    """``study/configs/<name>.toml``, with only the variants named in ``variants`` if given."""
    given = config.read_toml(common.CONFIGS / f"{name}.toml")
    if given["data"].get("path"):  # a config's data file is relative to the config
        given["data"]["path"] = str(common.CONFIGS / given["data"]["path"])
    if variants is not None:
        given["variants"] = {k: v for k, v in given["variants"].items() if k in variants}
    return given


def run(given: dict, args, overrides=()) -> tuple[study.Study, pd.DataFrame]:
    """A config (as :func:`read` gives it) into ``runs/<its name>``."""
    options = {"out": args.out / "runs" / given["name"], "force": args.force, "figures": False}
    options["overrides"] = [*overrides, *(TINY if args.tiny else ())]
    if args.tiny:
        options |= {"n_inits": 16, "chunk_size": 16}
        given = {**given, "variants": tiny_variants(given)}
    common.say(f"study run {given['name']}")
    ran, folder = runner.run_config(given, quiet=args.tiny, **options)
    return ran, results.ResultsFolder.open(folder).runs()


def tiny_variants(given: dict) -> dict:
    """--tiny's variants: one that runs k times the baseline's steps runs k times the tiny run's
    (and logs k times as sparsely)."""
    steps, every = (int(o.partition("=")[2]) for o in TINY)
    scaled = {}
    for name, overrides in given.get("variants", {}).items():
        train = dict(overrides.get("train", {}))
        if "steps" in train:
            factor = train["steps"] // given["train"]["steps"]
            train |= {"steps": steps * factor, "log_every": every * factor}
        scaled[name] = {**overrides, "train": train} if train else overrides
    return scaled


def not_variants(task: str) -> dict[str, str]:
    """Each remedy that is not a variant of the task's config, with why: the engine refuses it
    there, or it is the baseline (its overrides: as another task's config writes them)."""
    written = {n: t for x in TASKS for n, t in read(f"remedies_{x}")["variants"].items()}
    given = read(f"remedies_{task}")
    base = config.flatten({k: v for k, v in given.items() if k not in ("variants", "reference")})
    notes = {}
    for name in (name for name in REMEDIES if name not in given["variants"]):
        try:
            remedy = study.load_study(config.nest(base | config.flatten(written[name])))
        except study.ConfigError as error:
            notes[name] = f"refused by the engine: {str(error).splitlines()[0]}"
            continue
        if remedy.settings[0].values != study.load_study(config.nest(base)).settings[0].values:
            raise SystemExit(f"remedies_{task}.toml: {name} runs on this task; add it as a variant")
        notes[name] = "same as the baseline for this task"
    return notes


def columns(table: pd.DataFrame, names: list[str], new: list[str]) -> pd.DataFrame:
    return table[names].set_axis(new, axis=1)


def bounds(name: str) -> list[str]:
    return [f"{name}_lo", f"{name}_hi"]


def proportion(name: str) -> list[str]:
    return [f"k_{name}", f"p_{name}", *bounds(f"p_{name}")]


def per_variant(runs: pd.DataFrame) -> pd.DataFrame:
    """A row per variant: counts and proportions with Wilson intervals, means with intervals."""
    summary = analysis.summarize(runs, by="variant").set_index("variant")
    events = ("diverged", "dead_init", "dead_end", "revived")
    parts = [summary[["n_inits", "n_valid", *(c for event in events for c in proportion(event))]]]
    inactive = [runs[c] == runs["model.width"] for c in runs if c.startswith("inactive_units_end")]
    runs = runs.assign(inactive_end=pd.concat(inactive, axis=1).any(axis=1))
    alive = runs[~runs["dead_init"].astype(bool)]  # died in training: of those alive at init
    for event, name, rows in (
        ("revived_by_training", "revived_by_training", runs),
        ("revived_by_intervention", "revived_by_intervention", runs),
        ("dead_end", "died_in_training", alive),
        ("inactive_end", "inactive_end", runs),
    ):
        table = common.proportion_table(rows, ["variant"], event).set_index("variant")
        parts.append(columns(table, ["k", "p", "p_lo", "p_hi"], proportion(name)))
    living = runs[~runs["dead_end"].astype(bool)].assign(final_loss_alive=runs["final_loss"])
    for metric, rows in (
        ("initial_loss", runs),
        ("final_loss", runs),
        ("final_loss_alive", living),  # the networks alive at the end: the fits that could move
        ("final_accuracy", runs),
    ):
        table = common.mean_table(rows, ["variant"], metric, (None, None)).set_index("variant")
        parts.append(columns(table, ["mean", "mean_lo", "mean_hi"], [metric, *bounds(metric)]))
    return pd.concat(parts, axis=1)


def changes(
    runs: pd.DataFrame, settings: dict[str, config.Setting], reference: str, shared: bool
) -> pd.DataFrame:
    """Each variant against ``reference`` (``analysis.compare``): the change in P(dead at init),
    P(dead at end), final loss and accuracy with intervals; the test of P(dead at end);
    ``max_change``, the largest change in P(dead at end) that its interval leaves possible (a
    change not significant is at most this, at the interval's level). ``settings``: each
    variant's setting (for ``width_ratio``)."""

    def compare(metric: str, paired: bool = shared) -> pd.DataFrame:
        kwargs = {"shared_draws": paired, "reference": reference}
        return analysis.compare(runs, "variant", metric, **kwargs).set_index("level_b")

    def change(metric: str) -> pd.DataFrame:
        names = [f"diff_{metric}", *bounds(f"diff_{metric}")]
        return columns(compare(metric), ["difference", *bounds("difference")], names)

    end, unpaired = compare("p_dead_end"), compare("p_dead_end", paired=False)
    tests = columns(
        end,
        ["paired", "k_a_only", "k_b_only", "test", "p_value"],
        ["paired", "saved", "killed", "test", "p_value"],
    )
    alike = np.array([same_start(settings[reference], settings[name]) for name in end.index])
    width = (end["difference_hi"] - end["difference_lo"]).where(end["paired"] & alike)
    tests["width_ratio"] = width / (unpaired["difference_hi"] - unpaired["difference_lo"])
    tests["max_change"] = end[bounds("difference")].abs().max(axis=1)
    parts = [change("p_dead_init"), change("p_dead_end"), tests]
    return pd.concat([*parts, change("final_loss"), change("final_accuracy")], axis=1)


def task_table(task: str, args) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The task's rows of summary.csv (each remedy at its source's strength, then at its grid's
    best: ``remedies_tuning``; a remedy not run: its note), tuning.csv and bias_claim.csv."""
    given = read(f"remedies_{task}", TINY_VARIANTS if args.tiny else None)
    grid, members = tuning.grid_variants(given)
    ran, runs = run({**given, "variants": given["variants"] | grid}, args)
    setting = {s.variant: s for s in ran.settings}
    assert len(setting) == len(ran.settings), "a remedies config is one grid point per variant"
    shared = analysis.shares_draws([(ran.pairing, ran.seed)])
    table = rows_of(runs[~runs["variant"].isin(list(grid))], setting, shared)
    grids = tuning.tuning_table(task, runs, members)
    chosen = grids[grids["chosen"] & (grids["variant"] != "baseline")]
    chosen = chosen.set_index("remedy")["variant"]
    tuned_settings = {f"{r}_tuned": setting[v] for r, v in chosen.items()}
    tuned = rows_of(tuning.tuned_runs(runs, grids), setting | tuned_settings, shared)
    tuned = tuned.drop(index="baseline").join(tuning.described(grids))
    written = {
        n: "; ".join(f"{k}={json.dumps(v)}" for k, v in config.flatten(o).items())
        for n, o in ran.config["variants"].items()
    }
    written |= {f"{r}_tuned": written.get(v, "") for r, v in chosen.items()}
    notes = pd.DataFrame({"note": not_variants(task) | tuning.untuned(grids)}, dtype=object)
    table = pd.concat([table.assign(strength="source"), tuned.assign(strength="tuned"), notes])
    table.insert(0, "overrides", pd.Series(written, dtype=object))
    order = [n for r in ["baseline", *REMEDIES] for n in (r, f"{r}_tuned") if n in table.index]
    table = table.reindex(order).rename_axis("variant").reset_index()
    labels = table["variant"].map(REMEDIES | tuning.LABELS).fillna(table["variant"])
    table.insert(0, "remedy", labels)
    table.insert(2, "source", table["variant"].map(SOURCES).fillna(table.pop("source")))
    bias, bias_runs = run(read(f"remedies_{task}_bias"), args)
    table = table.assign(task=task, constant_loss=constant_loss(ran))
    return table, grids, bias_rows(bias, bias_runs, task, "p_dead_end")


def rows_of(runs: pd.DataFrame, settings: dict[str, config.Setting], shared: bool) -> pd.DataFrame:
    """A row per variant of ``runs`` (:func:`per_variant`), its change from the baseline
    (:func:`changes`) and whether it can die (:func:`cannot_die`)."""
    table = per_variant(runs).join(changes(runs, settings, "baseline", shared))
    return table.assign(cannot_die=pd.Series({n: cannot_die(settings[n]) for n in table.index}))


def cannot_die(setting: config.Setting) -> bool:
    """Whether P(dead at end) is 0 by definition: an activation whose derivative is never 0
    (leaky ReLU; ELU up to float32 rounding below z = -17.3; CReLU unless its pre-activation is
    exactly 0 on every input). Such remedies' P(dead) changes
    are reported but left out of the Holm family (issue 24). Batch norm is not among them: its
    trained gain and shift can silence a unit (9 of 200 |x| fits ended dead under it)."""
    activation, slope = setting.structure.activation, setting.numeric.leaky_slope
    return activation in ("elu", "crelu") or (activation in theory.NEVER_DEAD and slope != 0)


def constant_loss(ran: study.Study) -> float:
    """The loss of the best constant predictor on the task's training data: a network whose
    final loss is not below it has learnt nothing a constant would not (issue 24)."""
    values = ran.settings[0].as_dict  # the baseline; the remedies train on the same targets
    made = data.setting_data(values, ran.seed)
    assert made is not None, "the remedies' tasks are synthetic data, rebuilt from the seed"
    return data.constant_loss(made.targets, values["train.loss"])


def bias_rows(ran: study.Study, runs: pd.DataFrame, task: str, metric: str) -> pd.DataFrame:
    """A zero against a 0.01 bias at each learning rate (``analysis.compare``; ``saved``: dead
    under the zero bias only); no test where fewer than ``MIN_VALID`` runs did not diverge."""
    shared = analysis.shares_draws([(ran.pairing, ran.seed)])
    table = analysis.compare(runs, "model.bias_scale", metric, shared_draws=shared)
    value = "p" if metric in analysis.PROPORTIONS else "mean"
    names = {f"{value}_a": "zero_bias", f"{value}_b": "bias_0.01", "n_a": "n_zero_bias"}
    names |= {"n_b": "n_bias_0.01", "k_a_only": "saved", "k_b_only": "killed"}
    table = table.rename(columns=names).assign(task=task)[BIAS_COLUMNS]
    few = table[["n_zero_bias", "n_bias_0.01"]].min(axis=1) < MIN_VALID
    table.loc[few, ["difference", *bounds("difference"), "p_value"]] = np.nan
    return table


def xor_data(n: int = 256, dim: int = 10, flipped: float = 0.1) -> pd.DataFrame:
    """The CS231n task's data (``study/configs/data/cs231n_xor.csv``): ``n`` points of N(0, I) in
    ``dim`` dimensions, labelled 1 where the first two features have the same sign, a share
    ``flipped`` of the labels flipped at random; NumPy's generator seeded 0, six decimals."""
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((n, dim))
    labels = (inputs[:, 0] * inputs[:, 1] > 0).astype(int)
    labels = np.where(rng.random(n) < flipped, 1 - labels, labels)
    names = [f"x{i + 1}" for i in range(dim)]
    return pd.DataFrame(np.round(inputs, 6), columns=names).assign(y=labels)


def lr_claim_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The share of dead units after training per (bias, learning rate) of the 3 x 64 network
    (``runs`` with each network's ``dead_unit_share``)."""
    by = ["model.bias_scale", "train.learning_rate"]
    summary = analysis.summarize(runs, by=by).set_index(by)
    share = common.mean_table(runs, by, "dead_unit_share")
    parts = [summary[["n_inits", "n_valid", *proportion("diverged")]]]
    names = ["dead_unit_share", *bounds("dead_unit_share")]
    parts.append(columns(share.set_index(by), ["mean", "mean_lo", "mean_hi"], names))
    layers = summary.filter(regex="^dead_frac_end_l")
    parts.append(layers.rename(columns=lambda c: c.replace("dead_frac_end", "dead_unit_share")))
    accuracy = common.mean_table(runs, by, "final_accuracy", (0.0, 1.0)).set_index(by)
    parts.append(accuracy[["mean", "mean_lo", "mean_hi"]].set_axis(ACCURACY, axis=1))
    return pd.concat(parts, axis=1).reset_index()


def accuracy_cost(runs: pd.DataFrame, permutations: int = 10_000) -> dict[str, float]:
    """Do networks with more dead units end less accurate at the same learning rate and bias?
    The pooled within-cell slope of final accuracy on the share of dead units (least squares,
    each (bias, learning rate) cell centered), and a two-sided permutation p-value: the shares
    permuted within each cell (NumPy's generator seeded 0). Diverged runs left out."""
    valid = runs[~runs["diverged"].astype(bool)]
    cells = valid.groupby(["model.bias_scale", "train.learning_rate"])
    share = (valid["dead_unit_share"] - cells["dead_unit_share"].transform("mean")).to_numpy()
    accuracy = (valid["final_accuracy"] - cells["final_accuracy"].transform("mean")).to_numpy()
    slope = float(share @ accuracy / (share @ share))
    groups = [np.flatnonzero(cells.ngroup().to_numpy() == g) for g in range(cells.ngroups)]
    rng, beyond = np.random.default_rng(0), 0
    for _ in range(permutations):
        shuffled = share.copy()
        for rows in groups:
            shuffled[rows] = share[rng.permutation(rows)]
        beyond += abs(shuffled @ accuracy) >= abs(share @ accuracy)
    return {"slope": slope, "p_value": (beyond + 1) / (permutations + 1), "n": len(valid)}


def crossing(table: pd.DataFrame, column: str, level: float) -> float:
    """The learning rate where ``column`` first reaches ``level`` (log-linear interpolation);
    ``inf`` where it does not."""
    lr, share = table["train.learning_rate"].to_numpy(), table[column].to_numpy()
    above = np.flatnonzero(share >= level)
    if len(above) == 0 or above[0] == 0:
        return float(lr[0]) if len(above) else np.inf
    i = above[0]
    t = (level - share[i - 1]) / (share[i] - share[i - 1])
    return float(np.exp(np.log(lr[i - 1]) + t * (np.log(lr[i]) - np.log(lr[i - 1]))))


def bias_verdict(bias: pd.DataFrame, alpha: float = 0.05) -> str:
    tested = bias[bias["p_holm"].notna()]
    significant = tested["p_holm"] < alpha
    lower = int((significant & (tested["difference"] < 0)).sum())
    higher = int((significant & (tested["difference"] > 0)).sum())
    verdict = "not consistent" if lower else "no improvement shown"
    verdict = "consistent improvement" if lower == len(tested) > 0 else verdict
    return (
        f"{verdict}: a 0.01 bias lowers death significantly (Holm {alpha:g}) in {lower} of "
        f"{len(tested)} (task, learning rate) cells, raises it in {higher}, no clear change "
        f"in {len(tested) - lower - higher}"
    )


def lr_verdict(lr: pd.DataFrame) -> str:
    zero = lr[np.isclose(lr["model.bias_scale"], 0.0) & (lr["n_valid"] >= MIN_VALID)]
    zero = zero.sort_values("train.learning_rate")
    if zero.empty or (zero["k_diverged"] > 0).all():
        return f"not measured: no learning rate where at least {MIN_VALID} runs never diverged"

    def share(row) -> str:
        value, low, high = row[["dead_unit_share", *bounds("dead_unit_share")]]
        return f"{value:.3f} [{low:.3f}, {high:.3f}] at {row['train.learning_rate']:g}"

    point = crossing(zero, "dead_unit_share", CS231N_SHARE)
    stable = zero[zero["k_diverged"] == 0].iloc[-1]
    if np.isfinite(point):
        first = zero[zero["train.learning_rate"] >= point].iloc[0]
        text = (
            f"reached, at the edge of divergence: the share of dead units crosses 0.4 at a "
            f"learning rate of about {point:.3g} (interpolated); it is {share(first)} with "
            f"{first['p_diverged']:.0%} of runs diverged"
        )
    else:
        peak = zero.loc[zero["dead_unit_share"].idxmax()]
        text = (
            f"not reached by runs that did not diverge: the largest share of dead units is "
            f"{share(peak)} ({peak['p_diverged']:.0%} of runs diverged there)"
        )
    return f"{text}; at the largest rate where no run diverged it is {share(stable)}"


def cost_verdict(lr: pd.DataFrame, cost: dict[str, float], alpha: float = 0.05) -> str:
    """The accuracy side of the CS231n claim: the within-cell slope (:func:`accuracy_cost`) and
    the zero-bias network's mean accuracy at its best rate and at the highest one measured."""
    zero = lr[np.isclose(lr["model.bias_scale"], 0.0) & (lr["n_valid"] >= MIN_VALID)]
    if zero.empty:
        return f"not measured: no learning rate where at least {MIN_VALID} runs never diverged"
    best, last = zero.loc[zero["final_accuracy"].idxmax()], zero.iloc[-1]

    def point(row) -> str:
        value, low, high = row[ACCURACY]
        return (
            f"{value:.3f} [{low:.3f}, {high:.3f}] at {row['train.learning_rate']:g} "
            f"({row['dead_unit_share']:.0%} of units dead, {row['p_diverged']:.0%} of runs "
            "diverged)"
        )

    shown = cost["p_value"] < alpha and cost["slope"] < 0
    verdict = "supported, as an association" if shown else "not shown"
    return (
        f"{verdict}: at a fixed rate and bias, 0.1 more of the network dead goes with a final "
        f"accuracy changed by {cost['slope'] / 10:+.3f} (pooled within-cell slope, permutation "
        f"p = {cost['p_value']:.2g}, {cost['n']} networks that did not diverge); the mean "
        f"accuracy of those is {point(best)} and {point(last)}"
    )


def difference_caption(rows: pd.DataFrame) -> str:
    """What the bars and tests of ``analysis.compare``'s differences in a proportion on ``rows``
    are: Newcombe's 95% intervals, paired where the networks are shared, and the tests named."""
    paired = rows["paired"].astype(bool)
    kind = "paired 95%" if paired.all() else "95%"
    where = ", paired where networks are shared" if paired.any() and not paired.all() else ""
    tests = " or ".join(TESTS[test] for test in dict.fromkeys(rows["test"].dropna()))
    return f"bars: Newcombe's {kind} intervals{where}; test: {tests}"


def figure_changes(table: pd.DataFrame, out: Path, alpha: float = 0.05) -> None:
    """Every remedy's change in P(dead at end) from its task's baseline, a panel per task."""
    tasks = list(dict.fromkeys(table["task"]))
    labels = [label for label in dict.fromkeys(table["remedy"]) if label != "baseline"]
    drawn = table[(table["remedy"] != "baseline") & table["p_dead_end"].notna()]
    grid = {"squeeze": False, "sharey": True, "layout": "constrained"}
    fig, axes = plt.subplots(
        1, len(tasks), figsize=(4.2 * len(tasks), 0.32 * len(labels) + 1.6), **grid
    )
    style = common.plots.styles(["significant", "not significant"])
    for ax, task in zip(axes[0], tasks, strict=True):
        part = table[table["task"] == task].set_index("remedy")
        base, part = part.loc["baseline"], part.drop(index="baseline")
        part = part.assign(y=[labels.index(label) for label in part.index])
        ran = part[part["p_dead_end"].notna()]
        kinds = np.where(ran["cannot_die"].astype(bool), 2, (ran["p_holm"] < alpha).astype(int))
        for kind, rows in ran.groupby(kinds):
            look = style["significant" if kind == 1 else "not significant"]
            d, lo, hi = (rows[name] for name in ["diff_p_dead_end", *bounds("diff_p_dead_end")])
            color = "0.6" if kind == 2 else look["color"]
            marker = {"fmt": look["marker"], "color": color, "capsize": 3}
            marker |= {"markerfacecolor": "white" if kind == 0 else color}
            label = [f"Holm p >= {alpha:g}", f"Holm p < {alpha:g}", "0 dead by definition"][kind]
            ax.errorbar(d, rows["y"], xerr=[d - lo, hi - d], label=label, **marker)
        for note, y in part.loc[part["p_dead_end"].isna(), ["note", "y"]].itertuples(index=False):
            text = {"ha": "center", "va": "center", "fontsize": 7, "color": "0.4"}
            box = {"facecolor": "white", "edgecolor": "none", "pad": 1}
            ax.text(0, y, note.partition(":")[0], bbox=box, **text)
        ax.axvline(0, color="black", lw=0.8)
        ax.axvline(-base["p_dead_end"], color="black", ls=":", lw=1.2, label="all death removed")
        ax.set(xlim=(-1.02, 1.02), xlabel="change in P(dead at end) vs baseline")
        ax.set_yticks(range(len(labels)), [SHOWN.get(label, label) for label in labels])
        n = f"n = {int(base['n_valid'])} per remedy"
        ax.set_title(f"{TASKS[task]}\nbaseline {base['p_dead_end']:.2f}, {n}", fontsize=8)
    axes[0][0].invert_yaxis()
    handles = dict(zip(*reversed(axes[0][-1].get_legend_handles_labels()), strict=True))
    legend = {"fontsize": 7, "frameon": False, "loc": "upper left", "bbox_to_anchor": (1, 1)}
    axes[0][-1].legend(handles.values(), handles.keys(), **legend)
    k = int(table["p_holm"].notna().sum())
    family = f"Holm over the {k} (task, remedy) comparisons where P(dead) can change"
    fig.suptitle(f"{difference_caption(drawn)}, {family}", fontsize=8)
    common.save_figure(fig, out, "remedies_dead_end_change")


FINAL_LOSS_CAPTION = (
    "bars: 95% normal intervals of the mean over the networks that did not diverge (no test "
    "drawn: each remedy's paired change from its baseline, with its interval, is diff_final_loss "
    "in summary.csv)"
)


def figure_costs(table: pd.DataFrame, out: Path) -> None:
    """Every remedy's mean final loss (95% interval), a panel per task, against the baseline's
    and the best constant predictor's: the cost side of the change in P(dead at end)."""
    tasks = list(dict.fromkeys(table["task"]))
    labels = list(dict.fromkeys(table["remedy"]))  # the baseline first
    grid = {"squeeze": False, "sharey": True, "layout": "constrained"}
    size = (4.2 * len(tasks), 0.32 * len(labels) + 1.6)
    fig, axes = plt.subplots(1, len(tasks), figsize=size, **grid)
    for ax, task in zip(axes[0], tasks, strict=True):
        part = table[(table["task"] == task) & table["final_loss"].notna()].set_index("remedy")
        y = [labels.index(label) for label in part.index]
        loss, lo, hi = (part[name] for name in ["final_loss", *bounds("final_loss")])
        ax.errorbar(loss, y, xerr=[loss - lo, hi - loss], fmt="o", color="black", capsize=3)
        ax.axvline(part.loc["baseline", "final_loss"], color="0.5", lw=0.8, label="baseline")
        constant = part["constant_loss"].iloc[0]
        ax.axvline(constant, color="black", ls=":", lw=1.2, label="best constant predictor")
        ax.set(xscale="log", xlabel="mean final training loss (log scale)")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels overlap on short axes
        ax.set_yticks(range(len(labels)), [SHOWN.get(label, label) for label in labels])
        ax.set_title(f"{TASKS[task]}\nconstant predictor: {constant:.4f}", fontsize=8)
    axes[0][0].invert_yaxis()
    legend = {"fontsize": 7, "frameon": False, "loc": "upper left", "bbox_to_anchor": (1, 1)}
    axes[0][-1].legend(**legend)
    fig.suptitle(FINAL_LOSS_CAPTION, fontsize=8)
    common.save_figure(fig, out, "remedies_final_loss")


MEAN_BANDS = "bands: 95% normal intervals of the mean over networks"


def figure_claims(bias: pd.DataFrame, lr: pd.DataFrame, out: Path) -> None:
    """(a) dead-unit share of a 3 x 64 network against the learning rate; (b) its final
    accuracy, with the share of runs that diverged; (c) the 0.01 bias against a zero bias."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 3.9), layout="constrained")
    kept = lr[lr["n_valid"] >= MIN_VALID]
    kept = kept.assign(bias=[f"bias {b:g}" for b in kept["model.bias_scale"]])
    common.interval_lines(left, kept, "train.learning_rate", "dead_unit_share", "bias", band=True)
    common.interval_lines(middle, kept, "train.learning_rate", "final_accuracy", "bias", band=True)
    zero = lr[np.isclose(lr["model.bias_scale"], 0.0)].sort_values("train.learning_rate")
    diverged = {"color": "0.4", "ls": "--", "lw": 1, "label": "share of runs diverged (bias 0)"}
    for ax in (left, middle):
        ax.plot(zero["train.learning_rate"], zero["p_diverged"], **diverged)
        ax.set(xscale="log", ylim=(-0.02, 1.02), xlabel="learning rate (SGD)")
        ax.legend(fontsize=7, frameon=False)
    left.axhline(CS231N_SHARE, color="black", ls=":", lw=1.2, label="CS231n: 40%")
    left.legend(fontsize=7, frameon=False)
    left.set_ylabel("share of hidden units dead after training")
    middle.set_ylabel("final training accuracy")
    n = f"n = {int(lr['n_inits'].min())} networks per point"
    left.set_title(
        f"3 hidden layers of 64, He normal, noisy 10-D XOR\n{n}; diverged ones left out, "
        f"and points with < {MIN_VALID} left\n{MEAN_BANDS}",
        fontsize=8,
    )
    title = f"accuracy of the networks that did not diverge\n(10% of labels flipped)\n{MEAN_BANDS}"
    middle.set_title(title, fontsize=8)
    deltas = bias[bias["metric"] == "p_dead_end"]
    names = {task: TASKS[task].partition("\n")[0] for task in dict.fromkeys(deltas["task"])}
    deltas = deltas.assign(task=deltas["task"].map(names))
    order = list(names.values())
    common.interval_lines(right, deltas, "train.learning_rate", "difference", "task", order=order)
    right.axhline(0, color="black", lw=0.8)
    right.set(xscale="log", xlabel="learning rate")
    right.set_ylabel("change in P(dead at end)\nbias 0.01 minus zero bias")
    family = f"Holm over the {int(bias['p_holm'].notna().sum())} rows of bias_claim.csv"
    caption = f"{difference_caption(deltas)},\n{family}"
    title = f"a 0.01 bias against a zero bias, per task and learning rate\n{caption}"
    right.set_title(title, fontsize=8)
    right.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    common.save_figure(fig, out, "remedies_cs231n_claims")


def main(argv=None) -> int:
    args = common.parse_args("remedies", __doc__.splitlines()[0], argv)
    common.theme()
    runtime.configure(devices="auto")  # as `study run` does: a device per core
    tasks = ["question"] if args.tiny else list(TASKS)
    tables, grids, bias = zip(*(task_table(task, args) for task in tasks), strict=True)
    table = pd.concat(tables, ignore_index=True)
    family = ~table["cannot_die"].fillna(False).astype(bool)  # P(dead) can change there
    table["p_holm"] = analysis.holm(table["p_value"].where(family))
    table = table[["task", *(c for c in table if c not in ("task", "note")), "note"]]
    deep, deep_runs = run(read("remedies_cs231n"), args, TINY_CS231N if args.tiny else ())
    deep_runs["dead_unit_share"] = analysis.dead_share(deep_runs)
    bias_table = pd.concat([*bias, bias_rows(deep, deep_runs, "deep_3x64", "dead_unit_share")])
    bias_table["p_holm"] = analysis.holm(bias_table["p_value"])
    lr = lr_claim_table(deep_runs)
    verdicts = [bias_verdict(bias_table), lr_verdict(lr)]
    verdicts.append(cost_verdict(lr, accuracy_cost(deep_runs, 200 if args.tiny else 10_000)))
    claims = pd.DataFrame({"claim": CLAIMS, "verdict": verdicts})
    tables = {"summary": table, "tuning": pd.concat(grids, ignore_index=True)}
    tables |= {"bias_claim": bias_table, "lr_claim": lr, "claims": claims}
    for name, frame in tables.items():
        common.write_table(frame, args.out, f"{name}.csv")
    verdicts = remedies_verdicts.verdict_table(table)
    (args.out / "verdicts.md").write_text(remedies_verdicts.markdown(verdicts, table))
    common.say(f"wrote {args.out / 'verdicts.md'}")
    figure_changes(table, args.out)
    figure_costs(table, args.out)
    figure_claims(bias_table, lr, args.out)
    for claim in claims.itertuples():
        common.say(f"{claim.claim}: {claim.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
