"""``study bench --structures``: the engine's rate on a few fixed structures, as a share of the
machine's measured peak (arithmetic and memory bandwidth, :mod:`study.machine_peak`).

Each structure is timed by the engine (:func:`study.bench.time_engine`, compile excluded, the
best of a few repeats). Its work per initialization-step is counted from the structure by
:func:`operations_per_step` and :func:`bytes_per_step` (the formulas are in their docstrings
and in docs/performance.md, "The structures table"); rate x count / peak is the share.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from study.bench import cpu_name, time_engine
from study.bench_scr import scr_setting
from study.config import Setting, Structure, make_setting
from study.machine_peak import measure_peak
from study.model import layer_sizes
from study.step_cost import step_cost

# Operations per element of what the count charges beyond multiply-adds (an FMA is 2): every
# elementwise operation, an exp or a log included, is charged 1, so the count is a floor.
ACTIVATION_OPS = 2  # per hidden unit and sample: the activation and its derivative (relu)
OUTPUT_GRAD_OPS = {"bce": 6, "mse": 2}  # sigmoid (neg, exp, add, div), - y, / n; or 2 (o - y) / n
LOSS_OPS = {"bce": 5, "mse": 2}  # the check's loss per sample: softplus (3), y o, subtract
OPTIMIZER_OPS = {"adam": 14, "sgd": 2}  # per parameter (Adam: moments 3 + 4, update 7)
# Per parameter, the floats an optimizer step reads and writes (Adam: params, gradient and the
# two moments read, params and moments written; SGD: params and gradient read, params written).
OPTIMIZER_FLOATS = {"adam": 7, "sgd": 3}


class Workload(NamedTuple):
    """A structure of the table: its name, what it is, and its setting at ``steps`` steps."""

    name: str
    description: str
    setting: Callable[[int], Setting]
    unit: str  # what one step of one initialization is


def _mlp(depth: int, width: int) -> Callable[[int], Setting]:
    """The question's data and optimizer (256 samples, full batch, Adam 0.01) at depth x width."""

    def setting(steps: int) -> Setting:
        return make_setting(
            model_depth=depth, model_width=width, train_steps=steps, train_dtype="float32"
        )

    return setting


SCR_CHECK_EVERY = 40_000  # the paper's bins: bench_scr's 75 checks over 3 million examples


def _scr(steps: int) -> Setting:
    """bench_scr's learner, checked every 40,000 examples as at its full size (so that a
    shortened run pays the checks' share of the full one), or once for fewer examples."""
    spaced = steps % SCR_CHECK_EVERY == 0
    return scr_setting(steps, checks=steps // SCR_CHECK_EVERY if spaced else 1)


WORKLOADS = {
    "question": Workload("question", "2-1-1 relu, Adam, 256 samples", _mlp(1, 1), "init-step"),
    "width4_depth2": Workload(
        "width4_depth2", "2-4-4-1, Adam, 256 samples", _mlp(2, 4), "init-step"
    ),
    "width64_depth3": Workload(
        "width64_depth3", "2-64-64-64-1, Adam, 256 samples", _mlp(3, 64), "init-step"
    ),
    "scr": Workload("scr", "SCR 20-5-1, online SGD", _scr, "example x run"),
}
# (initializations or runs, steps, repeats) of each workload at each size.
SIZES = {
    "quick": {
        "question": (512, 50, 1),
        "width4_depth2": (256, 20, 1),
        "width64_depth3": (32, 10, 1),
        "scr": (32, 1500, 1),
    },
    "short": {
        "question": (16384, 200, 2),
        "width4_depth2": (4096, 50, 2),
        "width64_depth3": (256, 20, 2),
        "scr": (100, 120_000, 2),
    },
    "full": {
        "question": (16384, 1000, 3),
        "width4_depth2": (16384, 1000, 3),
        "width64_depth3": (1024, 200, 3),
        "scr": (100, 3_000_000, 2),
    },
}


def _check_countable(structure: Structure) -> None:
    """The counts cover plain MLPs with biases, relu, no normalization or intervention."""
    if (
        structure.activation != "relu"
        or structure.norm != "none"
        or not structure.use_bias
        or structure.intervention != "none"
        or structure.loss not in OUTPUT_GRAD_OPS
        or structure.optimizer not in OPTIMIZER_OPS
    ):
        raise ValueError(
            "the operation count covers relu MLPs with biases, no model.norm, no intervention, "
            f"loss {' or '.join(OUTPUT_GRAD_OPS)}, optimizer {' or '.join(OPTIMIZER_OPS)}"
        )


def samples_per_step(structure: Structure) -> int:
    """Samples one training step sees: the training set (full batch) or the batch."""
    return structure.n_samples if structure.full_batch else structure.batch_size


def operations_per_step(structure: Structure) -> float:
    """Floating-point operations per initialization-step (an FMA is 2; any other elementwise
    operation, exp and log included, 1).

    With layers ``(f_l, o_l)`` (the output layer last), ``H = sum of the hidden o_l``, ``P =
    sum f_l o_l + o_l`` parameters, ``n`` samples per step, ``m`` samples per check (the training
    set, or a stream's probe), a check every ``k`` steps::

        forward  F = sum_l (2 f_l o_l + o_l) + 2 H          (products, biases, relu and relu')
        backward B = sum_l (2 f_l o_l + o_l)                (weight and bias gradient sums)
                   + sum_(l > 1) 2 f_l o_l + H              (back through weights and relu')
        step       = n (F + G + B) + U P + m (F + H + L) / k

    ``G`` the output gradient per sample (bce 6, mse 2), ``U`` the optimizer's operations per
    parameter (Adam 14, SGD 2), ``L`` the check's loss per sample (bce 5, mse 2) and ``H`` its
    dead-unit test. Not counted: a stream's example generation and curve points.
    """
    _check_countable(structure)
    layers = layer_sizes(structure)
    weights = [fan_in * fan_out for fan_in, fan_out in layers]
    hidden = sum(fan_out for _, fan_out in layers[:-1])
    params = sum(w + fan_out for w, (_, fan_out) in zip(weights, layers, strict=True))
    dense = sum(2 * w + fan_out for w, (_, fan_out) in zip(weights, layers, strict=True))
    forward = dense + ACTIVATION_OPS * hidden
    backward = dense + sum(2 * w for w in weights[1:]) + hidden
    loss = structure.loss
    step = samples_per_step(structure) * (forward + OUTPUT_GRAD_OPS[loss] + backward)
    check = structure.n_samples * (forward + hidden + LOSS_OPS[loss]) / structure.log_every
    return step + OPTIMIZER_OPS[structure.optimizer] * params + check


def bytes_per_step(structure: Structure) -> float:
    """Bytes per initialization-step that cross memory if each per-sample array between the
    forward and the backward pass is written once and read once, and the optimizer's state is
    read and written once::

        bytes = s (2 n (2 H + 1) + V P)

    ``s`` bytes per float, ``n`` samples per step, ``H`` hidden units (each with its output and
    its relu' per sample), the output gradient per sample, ``V`` floats per parameter of the
    optimizer (Adam 7, SGD 3). Not counted: the data (shared by every initialization), the
    checks.
    """
    _check_countable(structure)
    layers = layer_sizes(structure)
    hidden = sum(fan_out for _, fan_out in layers[:-1])
    params = sum(fan_in * fan_out + fan_out for fan_in, fan_out in layers)
    per_sample = 2 * samples_per_step(structure) * (2 * hidden + 1)
    itemsize = np.dtype(structure.dtype).itemsize
    return itemsize * (per_sample + OPTIMIZER_FLOATS[structure.optimizer] * params)


def time_workload(workload: Workload, n_inits: int, steps: int, repeats: int) -> dict:
    """One row of the table: the engine's best rate of ``repeats`` runs, the counts from the
    structure, and XLA's count of the step compiled alone (:func:`study.step_cost.step_cost`)."""
    setting = workload.setting(steps)
    rates, compile_s = [], 0.0
    for repeat in range(repeats):
        _, timings = time_engine(setting, n_inits)
        rates.append(timings["init_steps_per_s"])
        compile_s = compile_s if repeat else timings["compile_s"]
    return {
        "structure": workload.name,
        "description": workload.description,
        "unit": workload.unit,
        "n_inits": n_inits,
        "steps": steps,
        "repeats": repeats,
        "steps_per_s": max(rates),
        "compile_s": compile_s,
        "flops_per_step": operations_per_step(setting.structure),
        "bytes_per_step": bytes_per_step(setting.structure),
        "xla_bytes_per_step": step_cost(setting).bytes,
    }


def structures_table(
    names: Sequence[str] = tuple(WORKLOADS),
    size: str = "short",
    progress: Callable[[str], None] = print,
) -> dict:
    """Measure the machine's peak, then time each named workload at ``size`` (quick, short or
    full, :data:`SIZES`); a JSON-ready dict with the peak, one row per workload (its rate,
    counts and shares of the peak) and the load average before and after."""
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    progress("peak: float32 multiply-adds and matrix products in cache, a stream through memory")
    peak = measure_peak(quick=size == "quick")
    rows = []
    for name in names:
        n_inits, steps, repeats = SIZES[size][name]
        progress(f"{name}: {n_inits} x {steps} steps, best of {repeats}")
        row = time_workload(WORKLOADS[name], n_inits, steps, repeats)
        row["flops_per_s"] = row["steps_per_s"] * row["flops_per_step"]
        row["share_of_peak_flops"] = row["flops_per_s"] / peak.flops_per_s
        row["share_of_elementwise_flops"] = row["flops_per_s"] / peak.elementwise_flops_per_s
        row["bytes_per_s"] = row["steps_per_s"] * row["bytes_per_step"]
        row["share_of_peak_bandwidth"] = row["bytes_per_s"] / peak.bytes_per_s
        xla_bytes_per_s = row["steps_per_s"] * row["xla_bytes_per_step"]
        row["xla_share_of_peak_bandwidth"] = xla_bytes_per_s / peak.bytes_per_s
        rows.append(row)
    return {
        "size": size,
        "date": date,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "peak": peak._asdict(),
        "rows": rows,
        "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0],
    }


def markdown_table(result: dict) -> str:
    """The table in markdown, as docs/performance.md and the README show it."""
    lines = [
        "| structure | inits x steps | M steps/s | FLOP/step | GFLOP/s | of peak | of elementwise "
        "| bytes/step | GB/s | of bandwidth | XLA's bytes/step | of bandwidth |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {WORKLOADS[row['structure']].description} | {row['n_inits']:,} x "
            f"{row['steps']:,} | {row['steps_per_s'] / 1e6:#.3g} | {row['flops_per_step']:,.0f} | "
            f"{row['flops_per_s'] / 1e9:.2f} | {row['share_of_peak_flops']:.1%} | "
            f"{row['share_of_elementwise_flops']:.1%} | {row['bytes_per_step']:,.0f} | "
            f"{row['bytes_per_s'] / 1e9:.2f} | {row['share_of_peak_bandwidth']:.1%} | "
            f"{row['xla_bytes_per_step']:,.0f} | {row['xla_share_of_peak_bandwidth']:.1%} |"
        )
    peak = result["peak"]
    lines.append("")
    lines.append(
        f"Measured peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s float32 (matrix products; "
        f"elementwise multiply-adds {peak['elementwise_flops_per_s'] / 1e9:.1f}), "
        f"{peak['bytes_per_s'] / 1e9:.1f} GB/s (stream); {result['cpu']}, "
        f"{result['cpu_count']} cores; measured on {result['date']}, load average "
        f"{result['load_average_before']:.2f} before and {result['load_average_after']:.2f} "
        "after. M steps/s: million initialization-steps (SCR: examples x runs) per second; "
        "operations (FLOP) and bytes per step counted from the structure (XLA's bytes: its "
        "count for the step compiled alone); shares of the measured peak, of the elementwise "
        "rate and of the stream's bandwidth."
    )
    return "\n".join(lines)


def format_structures(result: dict) -> str:
    """The table as plain text, with the peak and the load average it was measured under."""
    peak = result["peak"]
    lines = [
        f"machine: {result['cpu']} ({result['cpu_count']} cores, {peak['devices']} JAX "
        f"device(s)); measured peak, float32: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s "
        f"(matrix products {peak['matmul_flops_per_s'] / 1e9:.1f}, elementwise multiply-adds "
        f"{peak['elementwise_flops_per_s'] / 1e9:.1f}), memory {peak['bytes_per_s'] / 1e9:.1f} "
        "GB/s (stream)",
        f"load average (1 min): {result['load_average_before']:.2f} before, "
        f"{result['load_average_after']:.2f} after; size {result['size']}",
        "",
        f"{'structure':<15} {'inits x steps':>17} {'M steps/s':>9} {'FLOP/step':>11} "
        f"{'GFLOP/s':>7} {'of peak':>7} {'of elem':>7} {'B/step':>9} {'GB/s':>5} {'of BW':>6} "
        f"{'XLA B/step':>10} {'of BW':>6}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['structure']:<15} {row['n_inits']:>7} x {row['steps']:<9,} "
            f"{row['steps_per_s'] / 1e6:>9.4g} {row['flops_per_step']:>11,.0f} "
            f"{row['flops_per_s'] / 1e9:>7.2f} {row['share_of_peak_flops']:>7.1%} "
            f"{row['share_of_elementwise_flops']:>7.1%} {row['bytes_per_step']:>9,.0f} "
            f"{row['bytes_per_s'] / 1e9:>5.2f} {row['share_of_peak_bandwidth']:>6.1%} "
            f"{row['xla_bytes_per_step']:>10,.0f} {row['xla_share_of_peak_bandwidth']:>6.1%}"
        )
    lines += [
        "M steps/s: million initialization-steps per second (scr: examples x runs); FLOP and "
        "bytes per step counted from the structure; of peak: of the measured peak (of elem: of "
        "the elementwise one; of BW: of the stream's bandwidth; XLA B/step: XLA's count for the "
        "step compiled alone); docs/performance.md, 'The structures table'"
    ]
    return "\n".join(lines)
