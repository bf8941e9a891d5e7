"""``study bench``: how fast the engine trains initializations, and against what.

The workload is the question's network: 2 inputs, 1 ReLU hidden unit, 1 sigmoid output, 256
training samples, full batch, Adam with learning rate 0.01, 1,000 steps, 16,384 initializations,
float32. The benchmark reports initialization-steps per second (initializations x steps / run
seconds, compile excluded), compile seconds and peak resident memory, and runs the same workload
through two simple formulations for comparison:

1. a Python loop over initializations, each trained by a jitted function (a few are timed and the
   time is extrapolated to the whole workload);
2. the plain formulation: ``jit(vmap(lax.scan))`` of a training loop that takes ``jax.grad`` of a
   plain MLP and steps an Optax optimizer per parameter array, on a per-initialization copy of
   the data (:mod:`study.reference`). It starts from the same initializations on the same data
   as the engine, so it is also the reference the engine's results are checked against: the same
   dead/alive decision for every initialization, and the same final loss to float tolerance.

Then it times the engine on 4k to 256k initializations and on several step counts, to show that
run time is linear in both. The continual-learning workload (``--scr``) is :mod:`study.bench_scr`.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from study.config import Setting, make_setting
from study.engine import auto_chunk_size, run_group
from study.errors import ConfigError
from study.reference import (
    PAIRING,
    SEED,
    compare_with_plain,
    make_plain_train,
    results_identical,
    workload_inputs,
)

FULL = dict(n_inits=16384, steps=1000, repeats=3, loop_inits=4)
QUICK = dict(n_inits=512, steps=50, repeats=1, loop_inits=2)
SCALING_INITS = (4096, 16384, 65536, 262144)
SCALING_INITS_QUICK = (256, 1024)
SCALING_STEPS = (100, 300, 1000)
SCALING_STEPS_QUICK = (25, 50)
SCALING_INITS_STEPS = 100  # steps of the runs that scale the initializations


def workload_setting(steps: int) -> Setting:
    """The benchmark's setting: the defaults are the question's network, data and optimizer."""
    return make_setting(
        data_n_samples=256,
        model_depth=1,
        model_width=1,
        model_activation="relu",
        train_optimizer="adam",
        train_learning_rate=0.01,
        train_batch_size=0,
        train_steps=steps,
        train_dtype="float32",
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --------------------------------------------------------------------------------------------
# The engine.
# --------------------------------------------------------------------------------------------


def time_engine(setting: Setting, n_inits: int, chunk_size: int | None = None):
    """Run the engine once: ``(runs, timings)`` with init-steps/s added to the timings."""
    runs, _, timings = run_group(
        setting.structure, [setting], n_inits, SEED, chunk_size, pairing=PAIRING
    )
    timings = dict(timings)
    timings["init_steps_per_s"] = n_inits * setting.structure.steps / timings["run_s"]
    return runs, timings


# --------------------------------------------------------------------------------------------
# The plain formulation (alternative 2, study.reference) and the Python loop (alternative 1).
# --------------------------------------------------------------------------------------------


def time_plain(setting: Setting, n_inits: int):
    """Alternative 2 on the whole workload: ``(results, {compile_s, run_s, init_steps_per_s})``."""
    keys, data = workload_inputs(setting, n_inits)
    # A per-initialization copy of the data, as a plain vmap over (key, inputs, targets) has it.
    inputs = jnp.tile(data.inputs[None], (n_inits, 1, 1))
    targets = jnp.tile(data.targets[None], (n_inits, 1))
    train = jax.jit(jax.vmap(make_plain_train(setting)))
    start = time.perf_counter()
    compiled = train.lower(keys, inputs, targets).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    results = jax.device_get(compiled(keys, inputs, targets))
    run_s = time.perf_counter() - start
    rate = n_inits * setting.structure.steps / run_s
    return results, {"compile_s": compile_s, "run_s": run_s, "init_steps_per_s": rate}


def time_python_loop(setting: Setting, n_timed: int) -> dict[str, float]:
    """Alternative 1: a Python loop of a jitted one-initialization train, ``n_timed`` timed."""
    keys, data = workload_inputs(setting, n_timed + 1)
    train = jax.jit(make_plain_train(setting))
    start = time.perf_counter()
    jax.block_until_ready(train(keys[n_timed], data.inputs, data.targets))  # compiles
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for index in range(n_timed):
        jax.block_until_ready(train(keys[index], data.inputs, data.targets))
    run_s = time.perf_counter() - start
    rate = n_timed * setting.structure.steps / run_s
    return {"compile_s": compile_s, "timed_inits": n_timed, "init_steps_per_s": rate}


# --------------------------------------------------------------------------------------------
# The benchmark.
# --------------------------------------------------------------------------------------------


def run_benchmark(
    n_inits: int,
    steps: int,
    repeats: int,
    loop_inits: int,
    alternatives: bool = True,
    scaling: bool = True,
    quick: bool = False,
    chunk_size: int | None = None,
    progress=print,
) -> dict:
    """Time the engine (and optionally the alternatives and scaling); a JSON-ready dict."""
    setting = workload_setting(steps)
    devices = jax.local_devices()
    result: dict = {
        "workload": {
            "network": "2-1-1 relu, sigmoid output",
            "n_samples": 256,
            "optimizer": "adam lr 0.01",
            "n_inits": n_inits,
            "steps": steps,
            "dtype": "float32",
        },
        "machine": {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "backend": jax.default_backend(),
            "devices": [str(d) for d in devices],
            "jax": jax.__version__,
        },
        "chunk_size": chunk_size or auto_chunk_size(setting.structure, devices),
    }

    progress(f"engine: {n_inits} initializations x {steps} steps, {repeats} repeat(s)")
    rates, compile_s = [], []
    for _ in range(repeats):
        runs, timings = time_engine(setting, n_inits, chunk_size)
        rates.append(timings["init_steps_per_s"])
        compile_s.append(timings["compile_s"])
    result["engine"] = {
        "init_steps_per_s_best": max(rates),
        "init_steps_per_s_median": statistics.median(rates),
        "compile_s": compile_s[0],  # later repeats reuse the compiled program
        "peak_rss_mb": peak_rss_mb(),
    }

    if alternatives:
        result |= time_alternatives(setting, runs, loop_inits, progress)

    if scaling:
        result["scaling"] = time_scaling(n_inits, steps, quick, chunk_size, progress)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def time_alternatives(setting: Setting, runs, loop_inits: int, progress) -> dict:
    """The two simple formulations on the same workload, and the engine checked against one."""
    progress("alternative 2: plain jit(vmap(scan)) with jax.grad and optax")
    plain, plain_timings = time_plain(setting, len(runs))
    comparison = compare_with_plain(runs, plain)
    comparison["identical"] = results_identical(comparison)
    progress(f"alternative 1: a Python loop over {loop_inits} initializations")
    return {
        "plain": plain_timings,
        "comparison": comparison,
        "python_loop": time_python_loop(setting, loop_inits),
        "peak_rss_mb_after_alternatives": peak_rss_mb(),
    }


def time_scaling(n_inits: int, steps: int, quick: bool, chunk_size, progress) -> dict:
    """The engine's rate on more and more initializations, then on more and more steps."""
    scaling_inits = SCALING_INITS_QUICK if quick else SCALING_INITS
    scaling_steps = SCALING_STEPS_QUICK if quick else SCALING_STEPS
    inits_steps = min(SCALING_INITS_STEPS, steps)
    progress(f"scaling: initializations {scaling_inits} at {inits_steps} steps")
    by_inits = []
    for count in scaling_inits:
        _, timings = time_engine(workload_setting(inits_steps), count, chunk_size)
        by_inits.append({"n_inits": count, "steps": inits_steps, **timings})
    progress(f"scaling: steps {scaling_steps} at {n_inits} initializations")
    by_steps = []
    for count in scaling_steps:
        _, timings = time_engine(workload_setting(count), n_inits, chunk_size)
        by_steps.append({"n_inits": n_inits, "steps": count, **timings})
    return {"inits": by_inits, "steps": by_steps}


def format_table(result: dict) -> str:
    """The benchmark as a plain-text table."""
    work, machine = result["workload"], result["machine"]
    lines = [
        f"workload: {work['network']}, {work['n_samples']} samples, full batch, "
        f"{work['optimizer']}, {work['steps']} steps, {work['n_inits']} initializations, "
        f"{work['dtype']}",
        f"machine: {machine['cpu']} ({machine['cpu_count']} cores), JAX {machine['jax']} "
        f"{machine['backend']}, {len(machine['devices'])} device(s), "
        f"chunk {result['chunk_size']}",
        "",
        f"{'formulation':<44} {'M init-steps/s':>14} {'compile s':>10} {'vs engine':>10}",
    ]
    engine = result["engine"]
    best = engine["init_steps_per_s_best"]

    def row(name, rate, compile_s):
        lines.append(f"{name:<44} {rate / 1e6:>14.3f} {compile_s:>10.2f} {rate / best:>10.3f}")

    row("engine (best of repeats)", best, engine["compile_s"])
    row("engine (median of repeats)", engine["init_steps_per_s_median"], engine["compile_s"])
    if "plain" in result:
        plain = result["plain"]
        row(
            "alt 2: plain jit(vmap(scan)), jax.grad, optax",
            plain["init_steps_per_s"],
            plain["compile_s"],
        )
        loop = result["python_loop"]
        row(
            f"alt 1: Python loop of jit (x{loop['timed_inits']}, extrap.)",
            loop["init_steps_per_s"],
            loop["compile_s"],
        )
    lines.append(f"peak resident memory: {result['peak_rss_mb']:.0f} MiB")
    if "comparison" in result:
        c = result["comparison"]
        verdict = "identical" if c["identical"] else "DIFFERENT"
        lines.append(
            f"engine vs plain formulation: {verdict} (dead_init mismatches "
            f"{c['dead_init_mismatches']}, dead_end mismatches {c['dead_end_mismatches']}, "
            f"accuracy mismatches {c['accuracy_mismatches']} (max {c['max_accuracy_diff']:.4f}), "
            f"max |final loss diff| "
            f"{c['max_final_loss_diff']:.2e}; P(dead at end) {c['p_dead_end']:.4f})"
        )
    if "scaling" in result:
        lines += ["", f"{'inits':>8} {'steps':>6} {'run s':>8} {'M init-steps/s':>15}"]
        for entry in result["scaling"]["inits"] + result["scaling"]["steps"]:
            lines.append(
                f"{entry['n_inits']:>8} {entry['steps']:>6} {entry['run_s']:>8.2f} "
                f"{entry['init_steps_per_s'] / 1e6:>15.3f}"
            )
    return "\n".join(lines)


def benchmark(
    *,
    quick: bool = False,
    n_inits: int | None = None,
    steps: int | None = None,
    chunk_size: int | None = None,
    cpu_devices: int | None = None,
    alternatives: bool = True,
    scaling: bool = True,
    compile_cache: bool = True,
    progress: Callable[[str], None] = print,
) -> dict:
    """``study bench``: the full (or ``quick``) workload, with the defaults of its preset.

    ``cpu_devices``: the CPU as so many JAX devices (:func:`study.runtime.configure`;
    None: one per core, where JAX has not started yet). ``compile_cache``: load compiled
    programs from (and save them to) the persistent cache
    (:func:`study.runtime.configure`); with a warm cache, the compile seconds reported
    are those of loading the program. Returns :func:`run_benchmark`'s JSON-ready dict;
    :func:`format_table` prints it.
    """
    preset = QUICK if quick else FULL
    n_inits = preset["n_inits"] if n_inits is None else n_inits
    steps = preset["steps"] if steps is None else steps
    if n_inits <= 0 or steps <= 0 or (chunk_size is not None and chunk_size <= 0):
        raise ConfigError("--n-inits, --steps and --chunk-size must be positive")
    from study import runtime

    runtime.configure(
        devices="auto" if cpu_devices is None else cpu_devices, compile_cache=compile_cache
    )
    return run_benchmark(
        n_inits=n_inits,
        steps=steps,
        repeats=preset["repeats"],
        loop_inits=preset["loop_inits"],
        alternatives=alternatives,
        scaling=scaling,
        quick=quick,
        chunk_size=chunk_size,
        progress=progress,
    )
