#!/usr/bin/env bash
# Run one `study run` sweep on a SLURM cluster: every task runs the same command, JAX reads the
# coordinator, the number of processes and each task's index from SLURM's environment
# (jax.distributed's cluster detection), the initializations are sharded over every GPU of every
# node, and task 0 alone writes the results folder (on a file system task 0 can write; the other
# tasks write nothing). See docs/distributed.md.
#
#   sbatch scripts/slurm_example.sh study/configs/default.toml --n-inits 1000000
#
# Adapt the #SBATCH lines to your cluster. This layout is one task per GPU, each task seeing all
# of its node's GPUs (JAX then gives task k of a node GPU k). If your cluster binds GPUs per task
# (--gpus-per-task, or cgroups), use one task per node instead and export
# JAX_LOCAL_DEVICE_IDS=0,1,2,3 so that the single task drives every GPU of its node.
# On a CPU-only cluster: one task per node, --cpus-per-task = the node's cores, no --gpus.
#SBATCH --job-name=study
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=study-%j.log

set -euo pipefail

CONFIG=${1:?usage: sbatch scripts/slurm_example.sh CONFIG.toml [study run options]}
shift

# The environment with `pip install ".[cuda]"` done (see docs/distributed.md).
VENV=${VENV:-.venv}
# shellcheck disable=SC1091
source "$VENV/bin/activate"

# Seconds a task waits for the others to join, and tolerates a silent peer, before the run
# stops (instead of hanging on a node that died).
export STUDY_DISTRIBUTED_TIMEOUT=${STUDY_DISTRIBUTED_TIMEOUT:-300}
# The coordinator listens on the first node at a port derived from the job id; set
# JAX_COORDINATOR_PORT to choose it when that port is taken.

OUT=${OUT:-results/slurm-$SLURM_JOB_ID}

# No --coordinator/--num-processes/--process-id: srun's environment provides them. Task 0
# writes runs.parquet, summary.csv, manifest.json and the figures into $OUT.
srun --kill-on-bad-exit=1 study run "$CONFIG" --out "$OUT" "$@"

# The report, once, from the written results.
study report "$OUT"
