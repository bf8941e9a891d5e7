"""Several processes or hosts: ``jax.distributed``, arrays over all global devices, one writer.

A multi-process run is the same ``study run`` command started once per process (by hand with
``--coordinator/--num-processes/--process-id``, or by SLURM / Open MPI, whose environment JAX
reads). Every process executes the same compiled programs on its share of the initializations
(the init axis is sharded over all global devices); process 0 alone touches the results folder.

The processes must agree before they compute: :func:`all_or_none` runs a step on every process
and makes every process fail if one did (so no process waits in a collective for a peer that has
already given up), :func:`from_writer` lets process 0 decide (lock, resume plan) and tells the
others, and :func:`same_everywhere` refuses a run whose processes were given different configs.
Outside a multi-process run every helper is a no-op, so one code path serves both.

A process that dies takes the run down with it, and JAX's client makes every survivor abort (the
coordinator's death always; another process's once it has been silent for the heartbeat timeout);
the command line runs each process under :mod:`study.supervisor`, which turns that into one line.

``STUDY_DISTRIBUTED_TIMEOUT`` (seconds) bounds how long a process waits for its peers to join
(default 300 s, JAX's; a process still waiting after a few seconds says for what, and stops when
the time has passed); a silent peer is tolerated for at most ``HEARTBEAT_S`` (or the timeout
when it is shorter).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import jax
import numpy as np

from study import errors, runtime
from study.errors import ConfigError, FolderError

TIMEOUT_ENV = "STUDY_DISTRIBUTED_TIMEOUT"
HEARTBEAT_S = 10  # a peer silent this long is lost (JAX's default, 100 s, is too long to wait)
JOIN_S = 300  # JAX's default wait for the peers to join
WRITER = 0

T = TypeVar("T")


class PeerError(ConnectionError):
    """Another process of a multi-process run failed, or could not be reached (exit status 1)."""


# --------------------------------------------------------------------------------------------
# Joining the processes.
# --------------------------------------------------------------------------------------------


def cluster_environment() -> str | None:
    """The cluster manager that launched several processes of this run, if any.

    ``"slurm"`` inside a SLURM step of several tasks (``srun``), ``"ompi"`` under Open MPI's
    ``mpirun`` with several ranks; None otherwise (one task, or no cluster manager). These are
    the environments whose coordinator, process count and index ``jax.distributed`` detects.
    """
    env = os.environ
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(name in env for name in slurm) and _count(env["SLURM_NTASKS"]) > 1:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in env and _count(env.get("OMPI_COMM_WORLD_SIZE")) > 1:
        return "ompi"
    return None


def _count(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _timeouts() -> dict[str, int]:
    text = os.environ.get(TIMEOUT_ENV)
    seconds = JOIN_S
    if text is not None:
        try:
            seconds = int(text)
        except ValueError:
            seconds = 0
        if seconds < 1:
            raise ConfigError(f"{TIMEOUT_ENV}={text!r}: must be a positive whole number of seconds")
    heartbeat = min(seconds, HEARTBEAT_S)
    return {"initialization_timeout": seconds, "heartbeat_timeout_seconds": heartbeat}


def several_processes(coordinator, num_processes, process_id, environment) -> bool:
    """Check the flags; whether they (or the cluster environment) name several processes."""
    given = (coordinator, num_processes, process_id)
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"--num-processes {num_processes}: must be a positive integer")
    if num_processes == 1 and environment is None:
        if process_id not in (None, 0):
            raise ConfigError(f"--process-id {process_id}: must be 0 with --num-processes 1")
        return False
    if process_id is not None and not 0 <= process_id < (num_processes or process_id + 1):
        raise ConfigError(
            f"--process-id {process_id}: must be between 0 and --num-processes - 1 "
            f"({(num_processes or 1) - 1})"
        )
    if coordinator is not None and not re.fullmatch(r"\[?[^\s\[\]]+\]?:\d{1,5}", coordinator):
        raise ConfigError(f"--coordinator {coordinator!r}: must be HOST:PORT, e.g. node01:1234")
    if environment is None and None in given:
        flags = ("--coordinator", "--num-processes", "--process-id")
        missing = [flag for flag, value in zip(flags, given, strict=True) if value is None]
        raise ConfigError(
            f"{', '.join(missing)} missing: a run on several processes needs all three flags "
            "(or a SLURM / Open MPI launch that provides them)"
        )
    return True


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    log: Callable[[str], None] | None = None,
    waiting: Callable[[str], None] | None = None,
) -> bool:
    """Join the other processes of this run; returns whether it is a multi-process run.

    With none of the arguments and no cluster environment (:func:`cluster_environment`), this
    is a single-process run and nothing happens. Arguments left out are taken from the cluster
    environment. Must be called before JAX runs anything; calling it again is harmless. ``log``
    receives a line saying what this process waits for, at once; ``waiting`` (given even to a
    quiet command) the same line when the processes have not all joined after a few seconds,
    and when the timeout has passed a last line, after which the process ends (status 1).

    A peer that never joins makes JAX's client abort this process (it does not raise), and only
    at about twice the timeout; with ``waiting``, the process ends at the timeout itself.

    Raises ConfigError for arguments that are malformed or incomplete, PeerError when the peers
    do not all join within the timeout.
    """
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    given = (coordinator, num_processes, process_id)
    environment = cluster_environment()
    if all(value is None for value in given) and environment is None:
        return False
    if not several_processes(coordinator, num_processes, process_id, environment):
        return False
    runtime.use_cpu_collectives("gloo")
    timeouts = _timeouts()
    wait = timeouts["initialization_timeout"]
    who = f"process {process_id} of {num_processes}" if None not in given else environment
    where = f"at {coordinator}" if coordinator else f"at the address {environment} gives"
    if log is not None:
        log(f"{who}: joining the other processes {where} (waiting up to {wait} s)")
    try:
        with _joining(who, where, wait, waiting):
            jax.distributed.initialize(
                coordinator,
                num_processes,
                process_id,
                initialization_timeout=wait,
                heartbeat_timeout_seconds=timeouts["heartbeat_timeout_seconds"],
            )
    except (RuntimeError, ValueError) as err:
        raise PeerError(f"could not join the other processes: {_first_line(err)}") from None
    if jax.process_count() == 1:
        return False
    # The first collective connects the processes; gloo announces that on stdout, which
    # belongs to the command's output (the results folder), so send it to stderr.
    with _stdout_to_stderr():
        _allgather(np.zeros(1, dtype=np.int32))
    return True


JOIN_NOTICE_S = 5  # a process still joining after this long says what it waits for


@contextlib.contextmanager
def _joining(
    who: str | None, where: str, wait: int, say: Callable[[str], None] | None
) -> Iterator[None]:
    """While the processes join: after :data:`JOIN_NOTICE_S` (or half the wait, if shorter)
    what this process (``who``) waits for, ``where`` and how long, through ``say``; once the
    wait has passed, why the run stops, and the process ends with status 1. Nothing is said if
    they join before."""
    if say is None:
        yield
        return
    notice = (
        f"{who}: still waiting for all the processes to join {where}, up to {wait} s in all "
        f"({TIMEOUT_ENV}, default {JOIN_S})"
    )
    stop = (
        f"error: the processes did not all join {where} within {wait} s; start every process "
        f"of the run, or raise {TIMEOUT_ENV}"
    )
    timers = [
        threading.Timer(min(JOIN_NOTICE_S, wait / 2), say, [notice]),
        threading.Timer(wait + 1, _give_up, [say, stop]),
    ]
    for timer in timers:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()


def _give_up(say: Callable[[str], None], text: str) -> None:
    """End the process with ``text``: nothing is written before every process has joined."""
    say(text)
    sys.stderr.flush()
    os._exit(errors.EXIT_ERROR)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def is_writer() -> bool:
    """Whether this process writes the results (process 0; the only process of a plain run)."""
    return jax.process_index() == WRITER


# --------------------------------------------------------------------------------------------
# Arrays over all global devices.
# --------------------------------------------------------------------------------------------


def shard(array: np.ndarray, devices: Sequence[jax.Device]) -> jax.Array:
    """``array`` (the same on every process) split along its first axis over ``devices``.

    ``devices`` may belong to several processes: each process places only its own devices'
    slices. The first axis must be a multiple of ``len(devices)``.
    """
    if len(devices) == 1:
        return jax.device_put(array, devices[0])
    mesh = jax.sharding.Mesh(np.asarray(devices), ("inits",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("inits"))
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def fetch(tree: Any) -> Any:
    """A pytree of arrays as NumPy arrays on this process, whichever devices hold them.

    Arrays spread over other processes' devices are gathered (a collective: every process must
    call this for the same arrays).
    """
    if all(getattr(leaf, "is_fully_addressable", True) for leaf in jax.tree.leaves(tree)):
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    with _peers_reachable():
        return multihost_utils.process_allgather(tree, tiled=True)


def smallest(value: int) -> int:
    """The smallest of the processes' ``value`` (e.g. a chunk size that fits every host)."""
    if jax.process_count() == 1:
        return value
    return int(np.min(_allgather(np.asarray([value], dtype=np.int32))))


def _allgather(values: np.ndarray) -> np.ndarray:
    """``values`` of every process, stacked in process order: ``[n_processes, *values.shape]``."""
    from jax.experimental import multihost_utils

    with _peers_reachable():
        return np.asarray(multihost_utils.process_allgather(values, tiled=False))


@contextlib.contextmanager
def _peers_reachable() -> Iterator[None]:
    """Turn a failed collective (a peer died or hangs) into a one-line PeerError."""
    try:
        yield
    except jax.errors.JaxRuntimeError as err:
        count, me = jax.process_count(), jax.process_index()
        who = f"process {1 - me} of 2" if count == 2 else f"another of the {count} processes"
        raise PeerError(f"lost {who}: {_first_line(err)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --------------------------------------------------------------------------------------------
# Agreeing before computing.
# --------------------------------------------------------------------------------------------

_OK = errors.EXIT_OK


def _peer_failed(status: int, process: int, doing: str) -> Exception:
    message = f"process {process} failed to {doing}; see its message"
    if status == ConfigError.exit_status:
        return ConfigError(message)
    if status == FolderError.exit_status:
        return FolderError(message)
    return PeerError(message)


def all_or_none(step: Callable[[], T], doing: str) -> T:
    """Run ``step`` on every process; if it raised on any, raise on all.

    A process whose own step raised re-raises its error; the others raise the same kind of
    error (exit status), naming the first process that failed. ``doing`` completes "process i
    failed to ...". In a single-process run this is just ``step()``.
    """
    if jax.process_count() == 1:
        return step()
    error: Exception | None = None
    try:
        value = step()
    except Exception as err:  # noqa: BLE001 - re-raised below, after telling the peers
        error = err
    status = _OK if error is None else errors.exit_status(error)
    statuses = _allgather(np.asarray([status], np.int32))[:, 0]
    if error is not None:
        raise error
    failed = np.flatnonzero(statuses != _OK)
    if failed.size:
        raise _peer_failed(int(statuses[failed[0]]), int(failed[0]), doing)
    return value


def from_writer(decide: Callable[[], Sequence[int]] | None, size: int, doing: str) -> list[int]:
    """Process 0's decision, ``size`` small integers, on every process.

    Process 0 passes ``decide``, the others None. If ``decide`` raises, process 0 re-raises and
    every other process raises the same kind of error. In a single-process run this is
    ``decide()``.
    """
    if jax.process_count() == 1:
        assert decide is not None, "process 0 decides"
        return list(decide())
    from jax.experimental import multihost_utils

    message = np.zeros(size + 1, dtype=np.int32)
    error = None
    if is_writer():
        assert decide is not None, "process 0 decides"
        try:
            decision = np.asarray(decide(), dtype=np.int32)
            if decision.shape != (size,):
                raise ValueError(f"decision of shape {decision.shape}, expected ({size},)")
            message[1:] = decision
        except Exception as err:  # noqa: BLE001 - re-raised below, after telling the peers
            error = err
            message[0] = errors.exit_status(err)
    with _peers_reachable():
        message = np.asarray(multihost_utils.broadcast_one_to_all(message))
    if error is not None:
        raise error
    if message[0] != _OK:
        raise _peer_failed(int(message[0]), WRITER, doing)
    return [int(v) for v in message[1:]]


def same_everywhere(fingerprint: str, what: str) -> None:
    """Raise ConfigError on every process unless all passed the same ``fingerprint``.

    ``what`` names what must agree, for the message (e.g. "config, --n-inits, --seed").
    """
    if jax.process_count() == 1:
        return
    digest = hashlib.sha256(fingerprint.encode()).digest()[:8]
    mine = np.frombuffer(digest, dtype=np.int32)
    every = _allgather(mine)
    differing = [i for i, theirs in enumerate(every) if not np.array_equal(theirs, every[WRITER])]
    if differing:
        raise ConfigError(
            f"process {differing[0]} was started with a different {what} than process 0; "
            "start every process with the same command and files"
        )
