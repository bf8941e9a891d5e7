"""``study bench --scr``: the continual-learning workload, Dohare et al. (2024)'s slowly-changing
regression, run by the engine all at once against one run at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from study.bench import time_engine
from study.config import CHECK_INTERVENTIONS, INTERVENTIONS, Setting, make_setting
from study.errors import ConfigError
from study.reference import PAIRING, SEED


class ScrWorkload(NamedTuple):
    """The SCR benchmark's size: learners, examples each, and the share timed one at a time."""

    runs: int = 100
    steps: int = 3_000_000
    single_runs: int = 2
    single_share: float = 0.01


SCR = ScrWorkload()


def scr_setting(steps: int, checks: int = 75, intervention: str = "none") -> Setting:
    """The paper's SCR learner: 20 bits, 5 ReLU units (Kaiming uniform), online SGD at 0.01;
    ``checks`` logged steps (the paper's bins of 40,000 examples over 3 million), or one; with
    ``intervention`` at its default strengths (one at the checks: at every logged step)."""
    log_every = steps // checks if checks and steps % checks == 0 else steps
    remedy: dict[str, object] = {}
    if intervention != "none":
        remedy["train_intervention"] = intervention
    if intervention in CHECK_INTERVENTIONS:
        remedy["train_intervention_every"] = log_every
    return make_setting(
        **remedy,
        data_kind="slowly_changing",
        model_width=5,
        model_init="kaiming_uniform",
        train_optimizer="sgd",
        train_learning_rate=0.01,
        train_steps=steps,
        train_log_every=log_every,
    )


def benchmark_scr(
    runs: int = SCR.runs,
    steps: int = SCR.steps,
    progress: Callable[[str], None] = print,
    intervention: str = "none",
) -> dict:
    """``runs`` SCR learners on ``steps`` examples each, all at once (the engine), against the
    same runs one at a time: one jitted program per run (not vmapped), a few timed on a share
    of the steps and extrapolated. Throughput in examples x runs per second, compile excluded.

    With an ``intervention`` (e.g. ``"cbp"``), the engine also runs the same learners with it,
    alternately with the plain ones (:func:`_side_by_side`), and the result adds its rate and
    its cost per example relative to plain backprop's (``intervention_cost``: its time over
    plain's).
    """
    if runs <= 0 or steps <= 0:
        raise ConfigError("--scr-runs and --scr-steps must be positive")
    if intervention not in INTERVENTIONS:
        raise ConfigError(f"--scr-intervention {intervention}: allowed: {', '.join(INTERVENTIONS)}")
    setting = scr_setting(steps)
    progress(f"SCR: {runs} runs x {steps:,} examples, all at once")
    _, timings = time_engine(setting, runs)
    engine_rate = runs * steps / timings["run_s"]
    remedy: dict = {}
    if intervention != "none":
        remedy = _side_by_side(setting, runs, intervention, timings, progress)
        engine_rate = runs * steps / timings["run_s"]
    return {
        "runs": runs,
        "steps": steps,
        "engine_examples_per_s": engine_rate,
        "engine_run_s": timings["run_s"],
        "engine_compile_s": timings["compile_s"],
        **_one_at_a_time(runs, steps, engine_rate, progress),
        **remedy,
    }


def _side_by_side(
    setting: Setting,
    runs: int,
    intervention: str,
    timings: dict,
    progress: Callable[[str], None],
) -> dict:
    """The runs with ``intervention`` and again without, alternately (plain, remedy, plain,
    remedy: a shared machine's load falls on both), the faster of each pair; updates the plain
    ``timings`` with its faster run. Returns the remedy's entries of the result."""
    remedy_setting = scr_setting(setting.structure.steps, intervention=intervention)
    examples = runs * setting.structure.steps
    progress(f"SCR: the same runs with train.intervention = {intervention}, then both again")
    _, remedy_timings = time_engine(remedy_setting, runs)
    run_s = remedy_timings["run_s"]
    timings["run_s"] = min(timings["run_s"], time_engine(setting, runs)[1]["run_s"])
    run_s = min(run_s, time_engine(remedy_setting, runs)[1]["run_s"])
    return {
        "intervention": intervention,
        "intervention_examples_per_s": examples / run_s,
        "intervention_run_s": run_s,
        "intervention_compile_s": remedy_timings["compile_s"],
        "intervention_cost": run_s / timings["run_s"],
    }


def _one_at_a_time(
    runs: int, steps: int, engine_rate: float, progress: Callable[[str], None]
) -> dict:
    """The same SCR runs one at a time, a few timed on a share of the steps and extrapolated."""
    from study.train import draw_ids_of, make_start, start_structure, train_stream_one

    single_steps = max(1, int(steps * SCR.single_share))
    single = scr_setting(single_steps, checks=1)  # (fewer checks per example: its favour)
    structure, numeric = single.structure, single.numeric
    numerics = jax.tree.map(lambda v: np.asarray([v], np.float32), numeric)
    ids = draw_ids_of([single.setting_id], PAIRING)
    indices = np.arange(SCR.single_runs, dtype=np.int32)
    _, drawn = make_start(start_structure(structure))(np.uint32(SEED), numerics, ids, indices, None)
    one_run = jax.jit(lambda start: train_stream_one(structure, numeric, start))
    first = jax.tree.map(lambda a: a[0, 0], drawn)
    t0 = time.perf_counter()
    jax.block_until_ready(one_run(first))
    single_compile_s = time.perf_counter() - t0
    progress(f"SCR: {SCR.single_runs} runs one at a time on {single_steps:,} examples each")
    t0 = time.perf_counter()
    for index in range(SCR.single_runs):
        jax.block_until_ready(one_run(jax.tree.map(lambda a, i=index: a[0, i], drawn)))
    single_rate = SCR.single_runs * single_steps / (time.perf_counter() - t0)
    return {
        "one_at_a_time_examples_per_s": single_rate,
        "one_at_a_time_compile_s": single_compile_s,
        "one_at_a_time_run_s_extrapolated": runs * steps / single_rate,
        "speedup": engine_rate / single_rate,
    }


def format_scr(result: dict) -> str:
    """The SCR workload as plain text."""
    minutes = result["engine_run_s"] / 60
    return "\n".join(
        [
            f"SCR workload (Dohare et al. 2024): {result['runs']} runs x {result['steps']:,} "
            "examples, 5 ReLU units, online SGD 0.01",
            f"  engine, all runs at once: {result['engine_examples_per_s'] / 1e6:.2f} M "
            f"examples x runs / s, {minutes:.1f} min (+ {result['engine_compile_s']:.0f} s "
            "compile)",
            f"  one run at a time (extrapolated): "
            f"{result['one_at_a_time_examples_per_s'] / 1e6:.3f} M / s, "
            f"{result['one_at_a_time_run_s_extrapolated'] / 60:.1f} min",
            f"  speed-up: {result['speedup']:.0f}x  (the paper: about 15 CPU-minutes per run)",
        ]
        + _format_intervention(result)
    )


def _format_intervention(result: dict) -> list[str]:
    """The lines of the runs with an intervention, when the benchmark timed them."""
    if "intervention" not in result:
        return []
    return [
        f"  with {result['intervention']}, all runs at once: "
        f"{result['intervention_examples_per_s'] / 1e6:.2f} M examples x runs / s, "
        f"{result['intervention_run_s'] / 60:.1f} min: {result['intervention_cost']:.2f}x the "
        "cost per example of plain backprop"
    ]
