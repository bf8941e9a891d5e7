"""A supervisor for one process of several: one line, not JAX's abort, when a peer is lost.

A process that dies takes the run down with it, and JAX's client makes every survivor abort (the
coordinator's death always; another process's once it has been silent for the heartbeat timeout;
see :mod:`study.distributed`). So that the user sees one line instead of a C++ trace, the command
line runs each process under a small supervisor (:func:`supervise`): a parent that starts the
working process as its child, holds back JAX's log lines, and, when the child ends because a peer
was lost, says which process was lost and how to resume, with exit status 1. The child dies with
its supervisor. :func:`needs_supervisor` tells whether a command needs one.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import jax

from study import errors
from study.distributed import WRITER, cluster_environment, several_processes
from study.errors import ConfigError, FolderError

SUPERVISED_ENV = "STUDY_SUPERVISED"  # set in a supervised child's environment
# A line of JAX's C++ log (absl): level, date, time, thread, file:line]
_JAX_LOG = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [^ \]]+:\d+\] ")
_HOLD_S = 3.0  # JAX's log lines are shown if the child is still running this long after them
# the child ended by itself (success, usage, folder, interrupted)
_CLEAN = (errors.EXIT_OK, ConfigError.exit_status, FolderError.exit_status, errors.EXIT_INTERRUPTED)
_FLAGS = ("--coordinator", "--num-processes", "--process-id")


def needs_supervisor(coordinator=None, num_processes=None, process_id=None) -> bool:
    """Whether this command is one process of several, not yet running under :func:`supervise`.

    Flags that are malformed give False: the command itself reports them (exit status 2).
    """
    if os.environ.get(SUPERVISED_ENV) or jax.distributed.is_initialized():
        return False
    environment = cluster_environment()
    if (coordinator, num_processes, process_id) == (None, None, None) and environment is None:
        return False
    try:
        return several_processes(coordinator, num_processes, process_id, environment)
    except ConfigError:
        return False


def supervise(argv: Sequence[str]) -> int:
    """Run ``python -m study *argv`` as a child process; its exit status, or 1 if it was lost.

    The child writes to this process's stdout and, through this process, to its stderr: JAX's
    C++ log lines are held back for a few seconds, and dropped if the child then fails. When
    the child aborts because a peer was lost (JAX's client), dies from a signal, or stops on
    a lost peer itself, this prints which process was lost and the command that resumes the
    run (at most three lines) and returns 1. The child is killed if this process dies, and
    SIGTERM and SIGHUP are passed on to it.
    """
    reader, writer = _stderr_channel()
    env = {**os.environ, SUPERVISED_ENV: "1"}
    set_death_signal = _death_signal_setter()
    child = subprocess.Popen(
        [sys.executable, "-m", "study", *argv],
        env=env,
        stderr=writer,
        preexec_fn=set_death_signal,  # noqa: PLW1509 - no threads of ours run JAX here yet
    )
    os.close(writer)
    with _signals_passed_on(child):
        held = _relay(reader, child)
        status = child.wait()
    os.close(reader)
    return _outcome(status, held, argv)


def _stderr_channel() -> tuple[int, int]:
    """A pipe for the child's stderr, or a terminal when ours is one (so its progress bar stays)."""
    if not sys.stderr.isatty():
        return os.pipe()
    import fcntl
    import pty
    import termios

    reader, writer = pty.openpty()
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(sys.stderr.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(writer, termios.TIOCSWINSZ, size)
    return reader, writer


def _death_signal_setter() -> Callable[[], None] | None:
    """A function that makes the calling process get SIGKILL when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def _signals_passed_on(child: subprocess.Popen) -> Iterator[None]:
    """Signals sent to this process go to the child (which ignores a second Ctrl-C)."""

    def pass_on(number, _frame):
        child.send_signal(number)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {sig: signal.signal(sig, pass_on) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _relay(reader: int, child: subprocess.Popen) -> list[bytes]:
    """Copy the child's stderr to ours until it ends; the lines still held back then."""
    held: list[bytes] = []
    since = 0.0
    pending = b""
    while True:
        ready, _, _ = select.select([reader], [], [], 0.5)
        chunk = _read(reader) if ready else b""
        if ready and not chunk:
            return [*held, pending] if pending else held
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if held or (_JAX_LOG.match(line) and not os.environ.get("STUDY_TRACEBACK")):
                since = since if held else time.monotonic()
                held.append(line + b"\n")
            else:
                _write(line + b"\n")
        if held and time.monotonic() - since > _HOLD_S:
            _write(b"".join(held))
            held = []
        if pending and not held and pending[:1] not in (b"I", b"W", b"E", b"F"):
            _write(pending)  # a progress bar's line, redrawn in place
            pending = b""


def _read(reader: int) -> bytes:
    try:
        return os.read(reader, 65536)
    except OSError:  # a terminal whose other end has closed
        return b""


def _write(data: bytes) -> None:
    sys.stderr.flush()
    os.write(sys.stderr.fileno(), data)


def _outcome(status: int, held: list[bytes], argv: Sequence[str]) -> int:
    """Show what is left of the child's stderr, and why it stopped if it failed; the status."""
    if status in _CLEAN:
        _write(b"".join(held))
        return status
    text = b"".join(held).decode(errors="replace")
    if status == errors.EXIT_ERROR:  # the child stopped by itself, after its one-line message
        lines = [line for line in text.splitlines() if line.startswith("study ")]
    else:
        lines = [f"study run: error: {_what_happened(status, text)}"]
    lines.append(
        "study run: finished groups are kept; to resume, start every process again with the same "
        f"command, or run on process {WRITER}'s host alone: study {shlex.join(_alone(argv))}"
    )
    _write("".join(f"{line.rstrip()}\n" for line in lines).encode())
    return errors.EXIT_ERROR


def _what_happened(status: int, text: str) -> str:
    """Why the child ended (it aborted, or was killed), from its status and JAX's log."""
    if status in (-signal.SIGABRT, 128 + signal.SIGABRT):
        if "RegisterTask" in text:
            return "the processes did not all join in time; start every process of the run"
        lost = _lost_process(text)
        if lost is None:
            return "lost another process of the run (JAX stopped this one)"
        role = " (the coordinator)" if lost == WRITER else ""
        return f"lost process {lost}{role}: it stopped or cannot be reached"
    if status < 0:
        name = signal.Signals(-status).name
        hint = " (out of memory?)" if -status == signal.SIGKILL else ""
        return f"this process was killed by {name}{hint}"
    return f"this process ended with status {status}"


def _lost_process(text: str) -> int | None:
    """The process JAX's fatal log line says was lost: a silent task, or the coordinator."""
    silent = re.search(r"stopped sending heartbeats\):\s*(?:/job:\S*?/task:)?(\d+)", text)
    if silent:
        return int(silent.group(1))
    if "Failed to send RPC to coordination service" in text or "leader task" in text:
        return WRITER
    return None


def _alone(argv: Sequence[str]) -> list[str]:
    """``argv`` without the flags that make it one process of several."""
    alone, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _FLAGS:
            skip = True
        elif not arg.startswith(tuple(f"{flag}=" for flag in _FLAGS)):
            alone.append(arg)
    return alone
