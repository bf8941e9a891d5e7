#!/usr/bin/env bash
# One check of study on this machine's accelerator, run once from the repository root after
# `make` has installed .venv (about 5 minutes on a GPU):
#
#   bash scripts/device_check.sh
#   CPU_BENCH_INITS=4096 BENCH_STEPS=50 STUDY_INITS=20 bash scripts/device_check.sh  # a smoke test
#
# 1. `study info` (JAX version, backend, devices);
# 2. `study bench` of the engine alone at BENCH_INITS initializations x BENCH_STEPS steps on the
#    GPU (default 1,000,000 x 200), and at CPU_BENCH_INITS x BENCH_STEPS on the CPU (default
#    65,536 x 200: the CPU's rate is flat above 16k initializations, see docs/performance.md);
# 3. the default study with STUDY_INITS initializations per setting (default 200: 108 settings,
#    12 compiles, no figures, compile cache off so both runs compile), once on the GPU and once
#    on the CPU (JAX_PLATFORMS=cpu), into a temporary folder, and whether the two runs.parquet
#    make the same dead/alive decision (dead_init, dead_end) for every initialization;
# 4. `study plot` of the CPU run's folder (the figures are drawn on the CPU, in several processes
#    on a machine with 4 or more CPUs);
# 5. a markdown table of the numbers, to paste into docs/performance.md ("In brief").
#
# Without a GPU visible to JAX it says "no GPU found: CPU only", skips the GPU half and still
# prints the table with the CPU numbers. JAX sees a GPU only with its CUDA build:
#   .venv/bin/pip install -e ".[cuda]"
set -euo pipefail

cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
if [[ ! -x "$BIN/study" ]]; then
    echo "device_check: $BIN/study not found; run 'make' (or 'make test') first" >&2
    exit 2
fi
BENCH_INITS="${BENCH_INITS:-1000000}"
CPU_BENCH_INITS="${CPU_BENCH_INITS:-65536}"
BENCH_STEPS="${BENCH_STEPS:-200}"
STUDY_INITS="${STUDY_INITS:-200}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/device_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "== study info"
"$BIN/study" info

backend="$("$BIN/python" -c 'import jax; print(jax.default_backend())')"
if [[ "$backend" == "cpu" ]]; then
    echo "no GPU found: CPU only (JAX's backend is cpu)"
    if command -v nvidia-smi >/dev/null 2>&1; then
        echo "  nvidia-smi is present: install JAX's CUDA build with" \
            "'$BIN/pip install -e \".[cuda]\"' and run this again"
    fi
else
    echo "accelerator found: $backend"
fi

# on PLATFORM COMMAND...: COMMAND on the CPU (cpu) or on JAX's default accelerator (anything else)
on() {
    local platform="$1"
    shift
    if [[ "$platform" == "cpu" ]]; then
        JAX_PLATFORMS=cpu "$@"
    else
        "$@"
    fi
}

# seconds since the epoch, with decimals (date +%N is not portable)
now() { "$BIN/python" -c 'import time; print(time.time())'; }
elapsed() { awk -v start="$1" -v end="$(now)" 'BEGIN { printf "%.1f", end - start }'; }

# bench PLATFORM INITS: the engine alone (no alternatives, no scaling); prints M init-steps/s
bench() {
    local json="$WORK/bench_$1.json"
    echo "== study bench on $1: $2 initializations x $BENCH_STEPS steps" >&2
    on "$1" "$BIN/study" bench --n-inits "$2" --steps "$BENCH_STEPS" \
        --no-alternatives --no-scaling --json "$json" >&2
    "$BIN/python" -c 'import json, sys
rate = json.load(open(sys.argv[1]))["engine"]["init_steps_per_s_best"] / 1e6
print(f"{rate:.2f}")' "$json"
}

# small_study PLATFORM: the default study, STUDY_INITS per setting; prints its wall seconds
small_study() {
    local start
    echo "== default study on $1: $STUDY_INITS initializations per setting" >&2
    start="$(now)"
    on "$1" "$BIN/study" run --out "$WORK/study_$1" --n-inits "$STUDY_INITS" \
        --figures none --no-compile-cache --quiet >&2
    elapsed "$start"
}

if [[ "$backend" != "cpu" ]]; then
    gpu_rate="$(bench "$backend" "$BENCH_INITS")"
    gpu_wall="$(small_study "$backend")"
fi
cpu_rate="$(bench cpu "$CPU_BENCH_INITS")"
cpu_wall="$(small_study cpu)"
echo "== figures of the default study (study plot)" >&2
start="$(now)"
"$BIN/study" plot "$WORK/study_cpu" --figures png --no-cache >/dev/null  # drawn, not copied
figures_wall="$(elapsed "$start")"
n_figures="$(find "$WORK/study_cpu/figures" -name '*.png' | wc -l | tr -d ' ')"

agree="— (no GPU)"
if [[ "$backend" != "cpu" ]]; then
    echo "== dead/alive decisions, $backend against cpu"
    agree="$("$BIN/python" - "$WORK/study_$backend/runs.parquet" "$WORK/study_cpu/runs.parquet" <<'EOF'
import sys

import pandas as pd

accelerator, cpu = (pd.read_parquet(path) for path in sys.argv[1:3])
keys = [c for c in cpu.columns if c.startswith(("data.", "model.", "train."))] + ["init"]
accelerator, cpu = (
    frame.astype({key: str for key in keys}).sort_values(keys, ignore_index=True)
    for frame in (accelerator, cpu)
)
assert accelerator[keys].equals(cpu[keys]), "the two runs hold different initializations"
decisions = ["dead_init", "dead_end"]
differ = (accelerator[decisions] != cpu[decisions]).any(axis=1)
for column in decisions:
    count = int((accelerator[column] != cpu[column]).sum())
    print(f"{column}: {count} of {len(cpu)} differ", file=sys.stderr)
print("yes" if not differ.any() else f"no ({int(differ.sum())} of {len(cpu)} differ)")
EOF
)"
fi

workload="bench: 2-1-1 relu, adam, 256 samples, $BENCH_STEPS steps;"
workload+=" study: the default grid (108 settings), $STUDY_INITS inits each, no figures, cold compile"
echo
echo "$workload; $("$BIN/python" -c 'import jax; print("jax", jax.__version__)')"
echo
echo "| device | bench inits x steps | bench M init-steps/s | study wall s | decisions agree with CPU |"
echo "| --- | --- | --- | --- | --- |"
if [[ "$backend" != "cpu" ]]; then
    gpu_name="$("$BIN/python" -c 'import jax; print(jax.devices()[0].device_kind)')"
    echo "| $gpu_name | $BENCH_INITS x $BENCH_STEPS | $gpu_rate | $gpu_wall | $agree |"
fi
cpu_name="$("$BIN/python" -c 'from study.bench import cpu_name; import os; print(f"{cpu_name()} ({os.cpu_count()} cores)")')"
cpu_agree="(reference)"
if [[ "$backend" == "cpu" ]]; then
    cpu_agree="$agree"
fi
echo "| CPU: $cpu_name | $CPU_BENCH_INITS x $BENCH_STEPS | $cpu_rate | $cpu_wall | $cpu_agree |"
echo
cpus="$("$BIN/python" -c 'import os; print(os.cpu_count())')"
echo "figures of the default study (\`study plot\`, $n_figures PNGs, $cpus CPUs): $figures_wall s"
