"""The run lock: one ``study run`` at a time writes into a results folder.

The lock is an ``fcntl.flock`` on ``DIR/run.lock``: the kernel releases it when its process dies,
however it dies, so a killed run never blocks the next one. The file records the holder's pid and
host for the message a refused run prints; where the file system has no ``flock``, that pid and
host decide: a lock whose process no longer runs on this host is stale and taken over. The
holder removes the file when it lets go.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from study.errors import FolderError
from study.results.layout import LOCK


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}


def _read_holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text())
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def is_our_lock(path: Path) -> bool:
    """Whether the lock file ``path`` is one a run of ours may take: absent, empty (a run killed
    while taking it) or a holder record."""
    return not path.exists() or path.stat().st_size == 0 or bool(_read_holder(path))


def _alive(holder: dict) -> bool:
    """Whether the process recorded in a lock file may still run (unknown hosts: yes)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") is None:
        return False
    if holder["host"] != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _busy(folder: Path, holder: dict) -> FolderError:
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    if isinstance(holder.get("since"), int | float):
        who += ", since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
    return FolderError(
        f"{str(folder)!r} is in use by another study run ({who}); wait for it or use another --out"
    )


def _take(folder: Path, path: Path) -> int:
    """An open descriptor of ``path`` with the lock held; FolderError if another run holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(folder, _read_holder(path)) from None
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            # No flock on this file system: the recorded pid and host decide.
            holder = _read_holder(path)
            if _alive(holder):
                os.close(fd)
                raise _busy(folder, holder) from None
        # A finishing run unlinks the lock file while holding it; if ours is that old file,
        # start over on the new one.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def locked(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder``'s run lock for the duration; raise FolderError if another run holds it."""
    folder = Path(folder)
    path = folder / LOCK
    if not is_our_lock(path):
        raise FolderError(
            f"{str(path)!r} exists and is not a lock of `study run`; it is left as it is: "
            "use another --out"
        )
    fd = _take(folder, path)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder()).encode())
        os.fsync(fd)
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
