"""The folder of compiled programs (JAX's persistent compilation cache), checked before use.

JAX keeps each compiled program in one file, ``<program>-<hash>-cache``, of one folder, and
loads it when the same program is compiled again. Two things went wrong there with no word of
ours, and :func:`study.runtime.configure` now checks both before the process compiles:

- a folder that cannot hold the cache (a file, a path under /proc, a link loop, a read-only
  mount): JAX warned in two raw lines and went on without it; :func:`unusable` says why, and
  the cache is turned off with one line of ours;
- an entry damaged after it was written (JAX writes in place, so a process killed while writing
  leaves a truncated file; a disk error; an edit): JAX warned at every load, compiled the program
  again and never replaced the entry, as it keeps an existing file. :func:`remove_damaged` finds
  the entries that do not decompress and removes them, so that the next compile stores them
  anew. An index in the folder records the entries found whole (by size and time), so each is
  read once.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ENTRY_SUFFIX = "-cache"  # JAX's name for a compiled program's file (its "-atime" file beside)
INDEX = ".study-whole-entries.json"
# An entry this recent may still be being written by another process: it is checked later.
SETTLED_S = 60.0


def unusable(folder: str | Path) -> str | None:
    """Why ``folder`` cannot hold the cache (it is made if missing), or None when it can."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".study-check-"):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def _decompressor() -> Callable[[bytes], bytes] | None:
    """JAX's own reader of an entry's bytes (zstd or zlib, as JAX chose), None if not found."""
    try:
        from jax._src.compilation_cache import decompress_executable
    except ImportError:  # another version of JAX: entries are not checked
        return None
    return decompress_executable


def remove_damaged(folder: str | Path) -> int:
    """Remove the entries of ``folder`` that do not decompress, and their ``-atime`` files;
    return how many were removed. Entries written in the last :data:`SETTLED_S` seconds are
    left for a later check."""
    decompress = _decompressor()
    folder = Path(folder)
    if decompress is None or not folder.is_dir():
        return 0
    index = _read_index(folder / INDEX)
    whole: dict[str, list[int]] = {}
    removed = 0
    settled = time.time_ns() - int(SETTLED_S * 1e9)
    for path in sorted(folder.glob(f"*{ENTRY_SUFFIX}")):
        try:
            stat = path.stat()
            stamp = [stat.st_size, stat.st_mtime_ns]
            if index.get(path.name) != stamp:
                if stat.st_mtime_ns > settled:
                    continue
                decompress(path.read_bytes())
            whole[path.name] = stamp
        except OSError:  # gone meanwhile, or unreadable: JAX will say so itself
            continue
        except Exception:  # noqa: BLE001 - whatever the decompressor raises: not a whole entry
            removed += _remove_entry(path)
    if whole != index:
        _write_index(folder / INDEX, whole)
    return removed


def _remove_entry(path: Path) -> int:
    try:
        path.unlink()
    except OSError:
        return 0
    atime = path.with_name(path.name.removesuffix(ENTRY_SUFFIX) + "-atime")
    with contextlib.suppress(OSError):
        atime.unlink()
    return 1


def _read_index(path: Path) -> dict[str, list[int]]:
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _write_index(path: Path, index: dict[str, list[int]]) -> None:
    """Replace the index whole (a process that reads it meanwhile sees the old or the new one);
    a folder that refuses it only costs the next run a longer check."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(index))
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
