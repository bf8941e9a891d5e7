#!/usr/bin/env bash
# Regenerate every reproduction of docs/results/ (one page per study) into results/<name>/.
#
#   bash scripts/reproduce_all.sh            # recompute everything (about 40 minutes on 2 cores:
#                                            # dohare2024 alone is 17-30 minutes; plus about
#                                            # 18 minutes for plasticity, 40 for
#                                            # dohare2024_remedies, 4 for dohare2024_authors)
#   REPRODUCE_RESUME=1 bash scripts/...      # keep runs already complete on disk, redraw figures
#   bash scripts/reproduce_all.sh question lu2019   # only some of them
#
# Each step runs `study run` on a config of study/configs/ (through scripts/reproduce_<name>.py),
# then writes results/<name>/summary.csv, its other tables and figures/*.png. By default every run
# is recomputed (--force): a results folder's identity is its config, not the engine's version,
# so after an engine change reusing old runs would be wrong.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
if [[ ! -x "$PYTHON" ]]; then
    PYTHON=python3
fi
FORCE=(--force)
if [[ "${REPRODUCE_RESUME:-0}" == "1" ]]; then
    FORCE=()
fi
ALL=(question two_layers lu2019 arnekvist2020 sokar2023 remedies dohare2024 dohare2024_remedies
     dohare2024_authors plasticity)
NAMES=("${@:-${ALL[@]}}")

start_all=$(date +%s)
for name in "${NAMES[@]}"; do
    script="scripts/reproduce_${name}.py"
    if [[ ! -f "$script" ]]; then
        echo "reproduce_all: no such reproduction '$name' (known: ${ALL[*]})" >&2
        exit 2
    fi
    start=$(date +%s)
    echo "=== reproduce_all: ${name}: $PYTHON $script ${FORCE[*]:-} -> results/${name}/"
    "$PYTHON" "$script" "${FORCE[@]}"
    echo "=== reproduce_all: ${name} done in $(( $(date +%s) - start )) s"
done
echo "=== reproduce_all: all done in $(( $(date +%s) - start_all )) s; figures in results/*/figures/"
