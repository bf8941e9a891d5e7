"""JAX's process-wide settings, owned here: study's other modules never change them.

Three kinds of setting, each with its own scope:

- chosen once per process, before JAX starts its backend or compiles, by the command line or a
  notebook: :func:`configure` (the CPU as so many devices, the persistent compilation cache);
- chosen by a multi-process run before it joins its peers: :func:`use_cpu_collectives`;
- chosen per group of settings, for the code inside a ``with`` only: :func:`precision` (JAX's
  64-bit mode on for a float64 group, off otherwise; JAX's x64 flag is as before afterwards).

:func:`strict_promotion` makes JAX refuse implicit rank and dtype promotion (the tests use it).
Importing this module starts no backend, and it imports none of study's JAX modules.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import jax

from study import program_cache
from study.errors import ConfigError
from study.host import cache_root, usable_cpus

# Compiles shorter than this are not worth a file in the persistent cache (the engine's programs
# take seconds; this keeps JAX's small helper programs out of it).
CACHE_MIN_COMPILE_S = 0.2


class Configured(NamedTuple):
    """What :func:`configure` set: ``devices``, the count of CPU devices (None: none set);
    ``compile_cache``, the folder of the persistent compilation cache (None: off or left)."""

    devices: int | None
    compile_cache: str | None


def configure(
    devices: int | Literal["auto"] | None = None, compile_cache: bool | None = None
) -> Configured:
    """Choose how this process runs JAX, before it starts its backend; None leaves a setting.

    ``devices``: show the host's CPU to JAX as so many devices, over which the engine shards
    each chunk's initializations (the same bits for any count); ``"auto"``: one per CPU core
    this process may use, unless ``XLA_FLAGS`` or ``JAX_NUM_CPU_DEVICES`` already set a count.
    On the project's 2-core machine two devices trained 0-20% faster than one (noisy;
    ``docs/performance.md``). Takes effect only before JAX starts its backend: afterwards
    ``"auto"`` leaves JAX as it is and a count is refused (ConfigError).

    ``compile_cache``: True keeps compiled programs on disk, in :func:`compile_cache_dir`, so
    that a later process loads them instead of compiling (JAX's persistent compilation cache;
    it stores the executable XLA built, so a program loaded from it computes the same bits);
    False turns it off, even where JAX's own configuration turned it on. Takes effect only
    before the process's first compile.

    Returns the device count set (None where none was) and the cache folder (None when off).
    """
    count = None if devices is None else _use_cpu_devices(None if devices == "auto" else devices)
    folder = None if compile_cache is None else _use_compile_cache(compile_cache)
    return Configured(count, folder)


def setting(name: str) -> Any:
    """The value of one of JAX's settings (``"jax_enable_x64"``) in this thread, as it is now."""
    return getattr(jax.config, name)


def compile_cache_dir() -> str:
    """Where compiled programs are kept: ``JAX_COMPILATION_CACHE_DIR`` when set, else ``jax/``
    in study's cache folder (:func:`study.host.cache_root`: ``STUDY_CACHE_DIR``, else
    ``${XDG_CACHE_HOME:-~/.cache}/study``)."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    return str(cache_root() / "jax")


def _use_cpu_devices(count: int | None) -> int | None:
    """:func:`configure`'s ``devices`` (None: one per core); the count set, or None."""
    if count is not None and count <= 0:
        raise ConfigError(f"--cpu-devices {count}: must be a positive integer")
    count_set_by_user = "xla_force_host_platform_device_count" in os.environ.get(
        "XLA_FLAGS", ""
    ) or bool(os.environ.get("JAX_NUM_CPU_DEVICES"))
    if count is None and count_set_by_user:
        return None
    try:
        jax.config.update("jax_num_cpu_devices", count or usable_cpus())
    except RuntimeError as err:  # the backend already runs
        if count is None:
            return None
        raise ConfigError(f"--cpu-devices {count}: {err}") from None
    return setting("jax_num_cpu_devices")


def _use_compile_cache(enabled: bool) -> str | None:
    """:func:`configure`'s ``compile_cache``; the folder, or None when off.

    A folder that cannot hold the cache turns it off, and its damaged entries are removed
    (:mod:`study.program_cache`), each with one line on stderr, once per process and folder.
    """
    path = compile_cache_dir()
    why_not = program_cache.unusable(path) if enabled else None
    if not enabled or why_not is not None:
        if why_not is not None:
            _notice(
                f"the cache of compiled programs is off, every program is compiled anew: {path} "
                f"is not a usable folder ({why_not}); set STUDY_CACHE_DIR or "
                "JAX_COMPILATION_CACHE_DIR to a folder you may write, or pass --no-compile-cache"
            )
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    removed = program_cache.remove_damaged(path)
    if removed:
        entries = "entry" if removed == 1 else "entries"
        _notice(
            f"removed {removed} damaged {entries} (truncated or garbled) from the cache of "
            f"compiled programs in {path}; those programs are compiled and stored anew"
        )
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_S)
    return path


_NOTICED: set[str] = set()


def _notice(text: str) -> None:
    """One line to stderr, once per process (configure is called by every run in a process)."""
    if text not in _NOTICED:
        _NOTICED.add(text)
        print(f"study: {text}", file=sys.stderr, flush=True)


def use_cpu_collectives(implementation: str = "gloo") -> None:
    """Let CPU devices of different processes talk through ``implementation`` (gloo: TCP),
    unless the user chose one; GPUs use NCCL anyway. Before ``jax.distributed.initialize``."""
    if setting("jax_cpu_collectives_implementation") is None:
        jax.config.update("jax_cpu_collectives_implementation", implementation)


@contextlib.contextmanager
def precision(dtype: str) -> Iterator[None]:
    """JAX's 64-bit mode inside the ``with``: on for ``"float64"``, off for any other dtype.

    JAX computes in float64 only in 64-bit mode; scoped (and per thread), so a float64 group
    leaves the rest of the process in JAX's default float32, and a group's programs compile
    and run the same whatever ran before it. A compiled program must run in the mode it was
    compiled in: the engine compiles and runs a group inside one ``with``. (Before version 0.3
    a float64 setting switched the mode on for the whole process, so the float32 groups of a
    study that also held float64 ones, or of a process run with ``JAX_ENABLE_X64=1``, ran in
    64-bit mode; such float32 rows can now differ from those in their last bits. No committed
    study mixes the two.)
    """
    with jax.enable_x64(dtype == "float64"):
        yield


def strict_promotion() -> None:
    """No implicit promotion in ``jax.numpy``, for the rest of the process: operands of
    different ranks raise (``jax_numpy_rank_promotion``), and so do operands of different
    dtype kinds, bool with int or int with float (``jax_numpy_dtype_promotion``)."""
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
