"""Several processes and several devices: the same results as one process on one device.

Every process is started with a timeout and killed in a ``finally`` block, and
``STUDY_DISTRIBUTED_TIMEOUT`` bounds the wait for a peer, so a peer that dies or never comes fails
the test instead of hanging it. No test races a timer: the bound is far above how far apart
processes started together join on a loaded machine, and the one test that lets a join time out
starts no peer at all.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from study import distributed, results, runner, supervisor
from study.config import ConfigError, load_study
from study.errors import FolderError
from tests.helpers import ROOT, tiny_config, to_toml

# The tests' tiny config with one structural group of two settings; 10 initializations, so 4
# devices need padding and --chunk-size 8 gives two chunks.
TINY_TOML = to_toml(tiny_config(n_inits=10, seed=7, model__width=2, model__init_range=0.5))
# How long a process waits for its peers to join before it gives up (and, capped at
# distributed.HEARTBEAT_S, for a silent peer). It was 10 s: five interpreters importing JAX at
# once on a loaded 2-core machine could take longer to join than that, and fail a run that would
# have succeeded; 60 s only bounds a peer that never comes.
PEER_TIMEOUT_S = 60
PROCESS_TIMEOUT_S = 120  # whole process, compile included


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """One process on one device."""
    folder = tmp_path_factory.mktemp("reference") / "out"
    runner.run_study(load_study(config), folder, figures=False)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, env_extra=None) -> subprocess.Popen:
    """A Python process (``args`` after the interpreter) or, from "bash", a shell script."""
    env = {**os.environ, distributed.TIMEOUT_ENV: str(PEER_TIMEOUT_S)}
    env.pop("XLA_FLAGS", None)
    env.update(env_extra or {})
    return subprocess.Popen(
        args if args[0] == "bash" else [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(processes: list[subprocess.Popen], timeout=PROCESS_TIMEOUT_S) -> list[tuple]:
    """Each process's (exit status, stdout, stderr); every one killed if still running."""
    deadline = time.monotonic() + timeout
    outcomes = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outcomes.append((process.returncode, out, err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return outcomes


def _run_processes(config, outs, *extra_per_process, common=()) -> list[tuple]:
    """``study run`` as processes 0..P-1 of one run on 127.0.0.1 (P = len(outs))."""
    coordinator = f"127.0.0.1:{_free_port()}"
    processes = []
    for index, out in enumerate(outs):
        extra = extra_per_process[index] if extra_per_process else ()
        args = ["-m", "study", "run", str(config), "--out", str(out), "--no-figures", *common]
        args += ["--coordinator", coordinator, "--num-processes", str(len(outs))]
        processes.append(_start([*args, "--process-id", str(index), *extra]))
    return _finish(processes)


def _equal_results(folder: Path, reference: Path) -> None:
    pd.testing.assert_frame_equal(
        pd.read_parquet(folder / "runs.parquet"),
        pd.read_parquet(reference / "runs.parquet"),
        check_exact=True,
    )
    assert (folder / "summary.csv").read_bytes() == (reference / "summary.csv").read_bytes()


def test_two_processes_give_the_results_of_one(config, reference, tmp_path):
    writer_out, other_out = tmp_path / "p0", tmp_path / "p1"
    outcomes = _run_processes(config, [writer_out, other_out], common=["--chunk-size", "8"])
    for status, _, err in outcomes:
        assert status == 0, err[-3000:]
    _equal_results(writer_out, reference)
    manifest = json.loads((writer_out / "manifest.json").read_text())
    assert manifest["process_count"] == 2 and len(manifest["devices"]) == 2
    assert sorted(p.name for p in writer_out.iterdir()) == [
        ".study-results",
        "manifest.json",
        "runs.parquet",
        "summary.csv",
    ]
    assert not other_out.exists()  # process 1 writes nothing, not even its own --out
    assert outcomes[0][1].splitlines()[0] == str(writer_out) and outcomes[1][1].strip() == ""


def test_four_local_devices_give_the_results_of_one(config, reference, tmp_path):
    out = tmp_path / "four"
    flags = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    args = ["-m", "study", "run", str(config), "--out", str(out), "--no-figures", "--quiet"]
    ((status, _, err),) = _finish([_start(args, flags)])
    assert status == 0, err[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["devices"]) == 4 and manifest["process_count"] == 1
    _equal_results(out, reference)


@pytest.mark.slow  # three process starts (11 s); the two-process test stays in the default suite
def test_processes_fail_together_and_a_missing_peer_stops_the_run(config, tmp_path):
    # Three runs at once (cheaper than one after the other):
    # - a different --seed on process 1: both processes refuse the run (exit 2);
    # - a foreign folder at process 0's --out: process 0 refuses it, process 1 stops too (2);
    # - process 1 of 2 never starts: process 0 gives up after the join timeout (2 s).
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    coordinator_a, coordinator_b = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    processes = []
    for coordinator, out, extra in (
        (coordinator_a, tmp_path / "a", ()),
        (coordinator_a, tmp_path / "a", ("--seed", "8")),
        (coordinator_b, foreign, ()),
        (coordinator_b, foreign, ()),
    ):
        index = len(processes) % 2
        args = ["-m", "study", "run", str(config), "--out", str(out), "--quiet", *extra]
        args += ["--coordinator", coordinator, "--num-processes", "2", "--process-id", str(index)]
        processes.append(_start(args))
    alone = tmp_path / "alone"
    args = ["-m", "study", "run", str(config), "--out", str(alone), "--no-figures"]
    args += ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    processes.append(_start([*args, "--process-id", "0"], {distributed.TIMEOUT_ENV: "2"}))
    outcomes = _finish(processes)

    statuses = [status for status, _, _ in outcomes]
    assert statuses[:4] == [2, 2, 2, 2], [err[-2000:] for _, _, err in outcomes]
    for _, _, err in outcomes[:4]:
        ours = [line for line in err.splitlines() if line.startswith("study run:")]
        assert len(ours) == 1 and "Traceback" not in err, err
    assert "process 1 was started with a different config" in outcomes[0][2]
    assert "process 0 failed to take the results folder" in outcomes[3][2]
    assert not (tmp_path / "a").exists()
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    # a process whose peers do not join says so at once, again after half the wait (issue
    # 29: before, with --quiet, it waited in silence), and stops at the wait's end (JAX's
    # client would abort it later)
    assert statuses[4] != 0
    assert "process 0 of 2: joining the other processes at 127.0.0.1:" in outcomes[4][2]
    assert "still waiting for all the processes to join at 127.0.0.1:" in outcomes[4][2]
    assert "up to 2 s in all" in outcomes[4][2]
    assert not alone.exists()


# Two structural groups, long enough that a process can be killed between them.
TWO_GROUPS_TOML = to_toml(
    tiny_config(n_inits=10, seed=7, model__width=[2, 3], model__init_range=0.5, train__steps=30000)
)
EXIT_BOUND_S = 30  # a survivor must be gone this long after its peer died
JAX_LOG = re.compile(r"^[IWEF]\d{4} |Check failure|^\s+@ +0x|Traceback", re.MULTILINE)


@pytest.fixture(scope="module")
def two_groups(tmp_path_factory):
    """The two-group config and its results by one process, uninterrupted."""
    folder = tmp_path_factory.mktemp("two_groups")
    path = folder / "two.toml"
    path.write_text(TWO_GROUPS_TOML)
    runner.run_study(load_study(path), folder / "reference", figures=False)
    return path, folder / "reference"


def _wait_for(condition, processes, what: str) -> None:
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while not condition():
        assert all(p.poll() is None for p in processes), f"a process ended before {what}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(("lost", "resume_processes"), [(0, 2), (1, 1)])
def test_a_lost_process_stops_the_others_and_a_rerun_gives_the_same_bits(
    two_groups, tmp_path, lost, resume_processes
):
    config, reference = two_groups
    out = tmp_path / "out"
    args = ["-m", "study", "run", str(config), "--out", str(out), "--no-figures"]
    flags = ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    processes = [_start([*args, *flags, "--process-id", str(i)]) for i in range(2)]
    try:
        first_group = lambda: any((out / results.PARTIAL).glob("group-*.parquet"))  # noqa: E731
        _wait_for(first_group, processes, "finished a group")
        processes[lost].kill()
        killed = time.monotonic()
        ((status, _, err),) = _finish([processes[1 - lost]], timeout=EXIT_BOUND_S + 30)
        exit_s = time.monotonic() - killed
    finally:
        _finish(processes, timeout=5)
    assert status == 1 and exit_s < EXIT_BOUND_S, (status, exit_s, err[-3000:])
    message = err.splitlines()[-2:]
    assert message[0].startswith(f"study run: error: lost process {lost}"), err[-3000:]
    assert f"study run {config} --out {out} --no-figures" in message[1]
    assert not JAX_LOG.search(err), err[-3000:]
    assert not (out / results.RUNS).exists()  # only finished groups are left
    assert len(list((out / results.PARTIAL).glob("group-*.parquet"))) in (1, 2)

    outs = [out] + [tmp_path / f"other{i}" for i in range(1, resume_processes)]
    if resume_processes == 1:
        outcomes = [_finish([_start(args)])[0]]
    else:
        outcomes = _run_processes(config, outs)
    assert [status for status, _, _ in outcomes] == [0] * resume_processes, outcomes
    for name in (results.RUNS, results.SUMMARY):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert not any(other.exists() for other in outs[1:])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ((None, 0, None), "must be a positive integer"),
        (("127.0.0.1:1", 2, 2), "must be between 0 and --num-processes - 1"),
        (("127.0.0.1", 2, 0), "must be HOST:PORT"),
        (("127.0.0.1:1", None, 0), "--num-processes missing"),
        ((None, 1, 1), "must be 0 with --num-processes 1"),
    ],
)
def test_bad_flags_are_config_errors(monkeypatch, flags, message):
    for name in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri"):
        monkeypatch.delenv(name, raising=False)
    flags = dict(zip(("coordinator", "num_processes", "process_id"), flags, strict=True))
    with pytest.raises(ConfigError, match=message):
        distributed.initialize(**flags)


def test_one_process_needs_no_jax_distributed(monkeypatch):
    for name in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.initialize() is False
    assert distributed.initialize(num_processes=1, process_id=0) is False


def test_cluster_environment_is_detected_only_for_several_tasks(monkeypatch):
    slurm = {
        "SLURM_JOB_ID": "17",
        "SLURM_STEP_NODELIST": "node[01-02]",
        "SLURM_NTASKS": "2",
        "SLURM_PROCID": "1",
        "SLURM_LOCALID": "0",
    }
    for name in (*slurm, "OMPI_MCA_orte_hnp_uri", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.cluster_environment() is None
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    assert distributed.cluster_environment() == "slurm"
    monkeypatch.setenv("SLURM_NTASKS", "1")  # one task, e.g. an interactive salloc shell
    assert distributed.cluster_environment() is None
    monkeypatch.setenv("OMPI_MCA_orte_hnp_uri", "1531576320.0;tcp://10.0.0.1:34911")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.cluster_environment() == "ompi"


FAKE_SRUN = """\
#!/usr/bin/env bash
# srun for two tasks on this host: the environment SLURM gives each task, then wait for both.
shift  # --kill-on-bad-exit=1
pids=()
for task in 0 1; do
  SLURM_PROCID=$task SLURM_LOCALID=$task SLURM_NTASKS=2 SLURM_STEP_NODELIST=127.0.0.1 \\
    "$@" & pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
"""


def test_slurm_environment_starts_two_processes_without_flags():
    # What srun gives each of two tasks on one node; JAX reads coordinator, count and index.
    script = (
        "from study import distributed; import jax\n"
        "assert distributed.initialize()\n"
        "smallest = distributed.smallest(10 + jax.process_index())\n"
        "print(jax.process_index(), jax.process_count(), smallest)\n"
    )
    port = _free_port()
    processes = []
    for index in range(2):
        env = {
            "SLURM_JOB_ID": "4242",
            "SLURM_STEP_NODELIST": "127.0.0.1",
            "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(index),
            "SLURM_LOCALID": str(index),
            "JAX_COORDINATOR_PORT": str(port),
        }
        processes.append(_start(["-c", script], env))
    outcomes = _finish(processes)
    for index, (status, out, err) in enumerate(outcomes):
        assert status == 0, err[-3000:]
        assert out.split() == [str(index), "2", "10"]  # gloo's hello went to stderr


@pytest.mark.slow
def test_slurm_example_runs_two_tasks_detected_from_the_environment(config, reference, tmp_path):
    # No --coordinator/--num-processes/--process-id: JAX reads them from SLURM's variables.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    out = tmp_path / "slurm"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "VENV": sys.prefix,
        "SLURM_JOB_ID": "4242",
        "JAX_COORDINATOR_PORT": str(_free_port()),
        "OUT": str(out),
    }
    script = ["bash", str(ROOT / "scripts" / "slurm_example.sh"), str(config), "--no-figures"]
    process = _start(script, env)
    ((status, _, err),) = _finish([process])
    assert status == 0, err[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["process_count"] == 2
    _equal_results(out, reference)
    assert (out / "report.md").exists()


def test_all_or_none_and_from_writer_are_plain_calls_in_one_process():
    assert distributed.all_or_none(lambda: 5, "count") == 5
    assert distributed.from_writer(lambda: [1, 2], 2, "decide") == [1, 2]
    with pytest.raises(FolderError):
        distributed.from_writer(_raise_folder_error, 1, "decide")
    distributed.same_everywhere("anything", "config")


def _raise_folder_error():
    raise FolderError("locked")


# What JAX's client logs before it aborts a process (jaxlib 0.10), abridged.
COORDINATOR_GONE = (
    "E1129 23:31:48.926193   29859 coordination_service_agent.cc:289] Polled an error ...\n"
    "F1129 23:31:48.926223   29859 client.h:80] Terminating process because the JAX distributed "
    "service detected fatal errors. absl::Status: UNAVAILABLE: Failed to send RPC to "
    "coordination service. Either the leader task was preempted/died/restarted unexpectedly\n"
    "W1129 23:31:48.926 29859 preemption_sync_manager.cc:147] ... one of the tasks is unhealthy."
)
WORKER_SILENT = (
    "F1129 23:22:42.754212   23907 client.h:80] Terminating process because ... absl::Status: "
    "UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):\n1\n"
)
NEVER_JOINED = (
    "F1129 client.h:80] ... DEADLINE_EXCEEDED: Deadline Exceeded\n\nRPC: .../RegisterTask"
)


@pytest.mark.parametrize(
    ("status", "log", "says"),
    [
        (-6, COORDINATOR_GONE, "lost process 0 (the coordinator)"),
        (-6, WORKER_SILENT, "lost process 1:"),
        (-6, WORKER_SILENT.replace("\n1\n", "\n/job:jax_worker/replica:0/task:3\n"), "process 3:"),
        (-6, NEVER_JOINED, "did not all join in time"),
        (-9, "", "killed by SIGKILL (out of memory?)"),
    ],
)
def test_the_supervisor_names_what_ended_the_process(status, log, says):
    assert says in supervisor._what_happened(status, log)


def test_the_resume_command_drops_the_flags_of_several_processes():
    argv = ["run", "c.toml", "--coordinator", "h:1", "--num-processes=2", "--process-id", "1"]
    assert supervisor._alone([*argv, "--out", "d"]) == ["run", "c.toml", "--out", "d"]


def test_one_process_needs_no_supervisor(monkeypatch):
    for name in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", supervisor.SUPERVISED_ENV):
        monkeypatch.delenv(name, raising=False)
    assert not supervisor.needs_supervisor()
    assert not supervisor.needs_supervisor(None, 1, 0)
    assert not supervisor.needs_supervisor("h", 2, 0)  # malformed: reported by the run itself
    assert supervisor.needs_supervisor("h:1", 2, 0)
    monkeypatch.setenv(supervisor.SUPERVISED_ENV, "1")
    assert not supervisor.needs_supervisor("h:1", 2, 0)
