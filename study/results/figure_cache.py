"""The figure cache: figures drawn before, kept by the digest of everything they show.

A figure's file name in the cache is ``<digest>.<format>`` (:func:`cache_names`), the SHA-256 of
the study package's source, the drawing libraries' versions and a user's matplotlibrc
(:func:`code_digest`), the draw function, its arguments in a canonical form (:func:`feed`), the
format and the resolution: the same name, the same image. :class:`FigureCache` is the folder
``cache_root()/figures``: a figure is served only when whole, and the least recently used go
beyond :data:`FIGURE_CACHE_BYTES`. Several processes may use one cache at once: every file is
written atomically. A cache that cannot be made (a read-only home) is no cache: figures are then
drawn every time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from study.host import cache_root
from study.results.atomic import atomic_write
from study.results.layout import FIGURE_DPI, FIGURES

FIGURE_CACHE_BYTES = 256 * 2**20  # beyond this, the least recently used figures go
# The first and last bytes of a whole file, by format: a cut or foreign file is not served.
_WHOLE = {"png": (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"), "pdf": (b"%PDF-", b"%%EOF")}
# The study package, whose every module a figure's key covers.
_PACKAGE = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class FigureCache:
    """The figure cache in ``folder`` (make the user's with :meth:`open`)."""

    folder: Path

    @classmethod
    def open(cls) -> FigureCache | None:
        """``cache_root()/figures``, created if need be; None where it cannot be (a read-only
        home, a file in its place): figures are then drawn without the cache."""
        folder = cache_root() / FIGURES
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return cls(folder)

    def get(self, name: str) -> bytes | None:
        """The bytes of the figure kept as ``name``, or None if it is not there (or not whole).

        Its modification time is set to now: the pruning removes the least recently used first.
        """
        try:
            data = (self.folder / name).read_bytes()
        except OSError:
            return None
        head, tail = _WHOLE.get(Path(name).suffix[1:], (b"", b""))
        if not data or not data.startswith(head) or not data.rstrip().endswith(tail):
            return None
        with contextlib.suppress(OSError):
            os.utime(self.folder / name)
        return data

    def keep(self, name: str, source: Path) -> None:
        """Copy the figure file ``source`` into the cache as ``name``, if the cache takes it
        (atomically: another process may read the same cache)."""
        with contextlib.suppress(OSError):
            atomic_write(self.folder / name, lambda temporary: shutil.copyfile(source, temporary))

    def prune(self, limit: int = FIGURE_CACHE_BYTES) -> None:
        """Remove the least recently used figures until the cache holds at most ``limit``
        bytes."""
        try:
            files = [(e.stat().st_mtime, e.stat().st_size, e.path) for e in os.scandir(self.folder)]
        except OSError:
            return
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= limit:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
                total -= size


def cache_names(draw: Callable, arguments: dict, formats: Sequence[str]) -> list[str] | None:
    """The file names in the figure cache of the figure ``draw(**arguments)``, one per format:
    ``<digest>.<format>``.

    The digest (SHA-256) is of everything the image depends on: the study package's source
    and the drawing libraries' versions (:func:`code_digest`), the draw function's name, its
    arguments (:func:`feed`), the format and the resolution. None for arguments that have no
    canonical form (such a figure is drawn every time).
    """
    digest = hashlib.sha256(code_digest())
    feed(digest, f"{draw.__module__}.{draw.__qualname__}")
    try:
        feed(digest, arguments)
    except (TypeError, ValueError):
        return None
    names = []
    for suffix in formats:
        each = digest.copy()
        feed(each, [suffix, FIGURE_DPI])
        names.append(f"{each.hexdigest()}.{suffix}")
    return names


@functools.cache
def code_digest() -> bytes:
    """The digest of what every figure depends on besides its plan: the source of every module
    of the study package (read once per process) and the versions of the libraries that draw."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        feed(digest, [path.relative_to(_PACKAGE).as_posix(), path.read_bytes()])
    for name in ("study", "matplotlib", "seaborn", "numpy", "pandas"):
        feed(digest, [name, metadata.version(name)])
    for path in matplotlibrc_files():  # a user's settings, read without importing matplotlib
        feed(digest, [str(path), path.read_bytes()])
    return digest.digest()


def matplotlibrc_files() -> list[Path]:
    """The matplotlibrc files matplotlib would read before its own defaults: ``MATPLOTLIBRC``,
    ``./matplotlibrc``, and the one in ``MPLCONFIGDIR`` or ``~/.config/matplotlib``."""
    config = os.environ.get("MPLCONFIGDIR") or Path.home() / ".config" / "matplotlib"
    places = [os.environ.get("MATPLOTLIBRC"), "matplotlibrc", Path(config) / "matplotlibrc"]
    found = []
    for place in (place for place in places if place):
        path = Path(place)
        path = path / "matplotlibrc" if path.is_dir() else path
        if path.is_file():
            found.append(path)
    return found


def feed(digest, value) -> None:
    """Add ``value`` to ``digest`` in a canonical form: equal values, equal bytes, and no two
    different values alike (each part is a tag, its length and its bytes).

    A DataFrame by its columns, dtypes and index and ``pandas.util.hash_pandas_object`` of its
    rows (index included); dicts in their order (that of ``fixed`` is the title's); NumPy
    scalars as the Python ones (drawn alike). Raises TypeError for any other kind of value.
    """

    def part(tag: bytes, data: bytes) -> None:
        digest.update(tag + len(data).to_bytes(8, "little") + data)

    if isinstance(value, pd.DataFrame):
        part(b"D", b"")
        layout = [value.columns, value.dtypes, value.index.names, [value.index.dtype]]
        feed(digest, [[str(item) for item in names] for names in layout])
        part(b"H", pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
    elif isinstance(value, dict):
        part(b"M", str(len(value)).encode())
        for key, item in value.items():
            feed(digest, key)
            feed(digest, item)
    elif isinstance(value, list | tuple):
        part(b"L", str(len(value)).encode())
        for item in value:
            feed(digest, item)
    elif isinstance(value, np.generic):
        feed(digest, value.item())
    elif isinstance(value, bytes):
        part(b"B", value)
    elif value is None or isinstance(value, bool | int | float | str):
        part(b"S", f"{type(value).__name__}:{value!r}".encode())
    else:
        raise TypeError(f"no canonical form for a {type(value).__name__}")
