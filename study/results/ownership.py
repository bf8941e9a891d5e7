"""Which folders a run may write into, and which files in them are its own.

A run writes only into a new or empty folder or one of ours (a manifest of ours, or the marker
file), and replaces or removes only the files it makes: :func:`open_folder` checks a path before
anything is made, :func:`prepare` decides (with the lock held) whether the run resumes the
results there or starts anew, and :func:`clear` removes an earlier run's files for ``--force``.
Files that are not ours are never touched.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from study.config import SCHEMA
from study.errors import ConfigError, FolderError, FormatError
from study.results.atomic import TEMP_MARK, remove_temporaries
from study.results.layout import (
    COMPARISONS,
    CURVES,
    FIGURES,
    LOCK,
    MANIFEST,
    MARKER,
    PARTIAL,
    REPORT_HTML,
    REPORT_MD,
    RUNS,
    SUMMARY,
)
from study.results.lock import is_our_lock
from study.results.manifest import (
    PAIRING_BEFORE_THE_KEY,
    has_marker,
    has_our_manifest,
    read_manifest,
)
from study.results.partial import has_finished_groups

# The study package, which never holds results.
_PACKAGE = Path(__file__).resolve().parents[1]


def _is_ours(path: Path) -> bool:
    """Whether ``path`` (in a results folder) is a file that a run of ours made or may replace."""
    name = path.name
    if name == LOCK:
        return is_our_lock(path)
    return name in (PARTIAL, MANIFEST, MARKER) or TEMP_MARK in name


def _check_ours(folder: Path) -> None:
    """Refuse an existing folder that is neither empty (but for our files) nor ours."""
    if not folder.is_dir() or has_our_manifest(folder) or has_marker(folder):
        return
    foreign = sorted(p.name for p in folder.iterdir() if not _is_ours(p))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ConfigError(
            f"--out {str(folder)!r}: not empty ({shown}) and not a results folder of `study run` "
            f"(no {MANIFEST} of ours); nothing in it is touched: give an empty or new folder"
        )


def open_folder(folder: str | Path) -> Path:
    """Check that ``folder`` may hold a run's results, then create it; nothing is made before.

    Raises ConfigError (exit 2, naming ``--out``) for the filesystem root, a
    folder of the study package itself, an existing file, a path the system refuses (too long,
    a symbolic link loop, ...) and an existing folder that is neither empty nor ours, with or
    without ``--force``: files that are not ours are never touched.
    """
    folder = Path(folder)
    try:
        where = folder.resolve()
        if where == Path(where.anchor):
            raise ConfigError(f"--out {str(folder)!r}: the filesystem root cannot hold results")
        if where == _PACKAGE or _PACKAGE in where.parents:
            raise ConfigError(f"--out {str(folder)!r}: a folder of the study package itself")
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--out {str(folder)!r}: an existing file, not a folder")
        _check_ours(folder)
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError) as err:  # RuntimeError: a symbolic link loop on Python 3.11
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"--out {str(folder)!r}: not a usable folder ({reason})") from None
    return folder


def prepare(folder: Path, identity: dict, force: bool) -> str:
    """Check that ``folder`` may take the run identified by ``identity``; clear it if forced.

    Called with the lock held. ``identity`` holds the manifest entries that must match to
    resume (the resolved ``config`` and the ``data_files`` digests). Returns ``"resume"`` when
    the folder holds (finished or unfinished) results of the same identity, else ``"new"``;
    ``force`` clears earlier results of ours first and always gives ``"new"``, and so does a
    folder whose unfinished run finished no group (whatever its config).

    Raises FolderError for another config's results or results of an incompatible format,
    unless ``force``; ConfigError for a folder that is not ours (as :func:`open_folder`).
    """
    _check_ours(folder)
    remove_temporaries(folder)
    if not (folder / MANIFEST).exists():
        return "new"
    if force:
        clear(folder)
        return "new"
    try:
        manifest = read_manifest(folder)
    except FormatError as err:
        raise FolderError(str(err)) from None
    if manifest is not None and not manifest.complete and not has_finished_groups(folder):
        # A run that failed or was stopped before it finished a group left nothing to resume:
        # the corrected config takes the folder (its first run must not lock it to a bad one).
        clear(folder)
        return "new"
    recorded = {name: getattr(manifest, name) for name in identity}
    written = recorded.get("config")
    recorded["config"] = _with_new_defaults(written, identity.get("config"))
    refusal = _decay_read_by_adamw_only(folder, written, recorded, identity)
    if refusal is not None:
        raise refusal
    if _by_content(recorded) != _by_content(identity):
        raise _different_config(folder, recorded, identity)
    return "resume"


def _by_content(identity: dict) -> dict:
    """``identity`` with each data file named by its digest instead of its path, so that a
    checkout moved elsewhere (or a results folder copied into another) resumes its runs: the
    config resolves ``data.path`` to an absolute path, but the same bytes are the same data."""
    files = identity.get("data_files") or {}

    def named(value):
        if isinstance(value, list):
            return [named(v) for v in value]
        if not isinstance(value, dict):
            return value
        return {
            k: _path_digest(v, files) if k == "data.path" else named(v) for k, v in value.items()
        }

    return {**named(identity), "data_files": sorted(files.values())}


def _path_digest(value, files: dict):
    if isinstance(value, list):
        return [_path_digest(v, files) for v in value]
    return f"sha256:{files[value]}" if value in files else value


# A key added when train.weight_decay came to apply to every optimizer: a config written without
# it is from when adamw alone read the weight decay.
_ADDED_WITH_DECAY_FOR_ALL = "train.warmup_steps"


def _decay_read_by_adamw_only(
    folder: Path, written: dict | None, recorded: dict, identity: dict
) -> FolderError | None:
    """The refusal of a folder written when adamw alone read ``train.weight_decay``: where that
    key is all that differs (it recorded 1e-4 for settings whose optimizer did not read it, and
    the same runs now resolve it to 0), or where the config now decays an optimizer other than
    adamw (its runs did not), its tables would mislabel the runs; None otherwise."""
    old, new = recorded.get("config") or {}, identity.get("config") or {}
    if written is None or _ADDED_WITH_DECAY_FOR_ALL in written:
        return None
    decay = "train.weight_decay"
    rest_alike = {**recorded, "config": {**old, decay: new.get(decay)}} == identity
    if (recorded == identity or not rest_alike) and not _decays_beyond_adamw(new):
        return None
    return FolderError(
        f"{str(folder)!r} was written when only adamw read {decay} ({old.get(decay)!r} there, "
        f"{new.get(decay)!r} now: the other optimizers now decay too, off by default); use "
        "--force to rewrite it (the same draws), or another --out"
    )


def _decays_beyond_adamw(config: dict) -> bool:
    """Whether a resolved config may decay an optimizer other than adamw (cautious: any
    non-zero decay beside any other optimizer, in the grid or a variant)."""
    variants = (config.get("variants") or {}).values()
    values = [config, *variants]

    def listed(name: str) -> list:
        found = [v.get(name) for v in values if name in v]
        return [x for v in found for x in (v if isinstance(v, list) else [v])]

    others = any(name != "adamw" for name in listed("train.optimizer"))
    return others and any(value for value in listed("train.weight_decay"))


def _different_config(folder: Path, recorded: dict, identity: dict) -> FolderError:
    """The refusal of a folder that holds another config's results; when the pairing alone
    differs and the folder's is "independent" (every folder's from before the key), it says
    what to add to the config to resume it."""
    old, new = recorded.get("config") or {}, identity.get("config") or {}
    paired_alike = {**recorded, "config": {**old, "pairing": new.get("pairing")}}
    if (
        old.get("pairing") == PAIRING_BEFORE_THE_KEY != new.get("pairing")
        and paired_alike == identity
    ):
        return FolderError(
            f'{str(folder)!r} was written with pairing = "{PAIRING_BEFORE_THE_KEY}" (each setting '
            "its own draws, as every folder from before the pairing key); add "
            f'pairing = "{PAIRING_BEFORE_THE_KEY}" to the config to resume it, or use --force to '
            "replace it"
        )
    return FolderError(
        f"{str(folder)!r} holds results of a different config "
        f"({_first_difference(recorded, identity)}); use another --out, or --force to "
        "replace them"
    )


def _with_new_defaults(old: dict | None, new: dict | None) -> dict | None:
    """An older run's config with the keys added since filled in where the new config has
    their defaults: such keys change nothing (``Key.in_id_at_default``), so the run is the same.
    A config without ``pairing`` is one from before the key: its pairing is "independent"."""
    if old is None or new is None:
        return old
    old = {**old, "pairing": old.get("pairing", PAIRING_BEFORE_THE_KEY)}
    keys = {key.name: key for key in SCHEMA}
    added = {
        name: value
        for name, value in new.items()
        if name not in old
        and name in keys
        and not keys[name].in_id_at_default
        and value == keys[name].default
    }
    return {**old, **added}


def _first_difference(old: dict, new: dict) -> str:
    old_config, new_config = old.get("config") or {}, new.get("config") or {}
    for name in dict.fromkeys([*new_config, *old_config]):
        if old_config.get(name) != new_config.get(name):
            return f"{name}: {old_config.get(name)!r} there, {new_config.get(name)!r} now"
    return "its data files changed"


def clear(folder: Path) -> None:
    """Remove the results and derived files of an earlier run of ours, and nothing else.

    Figures go only when the manifest lists them as ours; the report and the comparisons only
    under the names ``study report`` and ``study compare`` give them.
    """
    try:
        manifest = read_manifest(folder)
        figures = (manifest.figures if manifest else None) or ()
    except FormatError:  # results of another version of study: which figures are ours is unknown
        figures = ()
    ours = [folder / RUNS, folder / CURVES, folder / SUMMARY, folder / REPORT_MD]
    ours += [folder / REPORT_HTML]
    ours += [folder / FIGURES / name for name in figures]
    ours += sorted((folder / COMPARISONS).glob("*.csv"))
    for path in ours:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    shutil.rmtree(folder / PARTIAL, ignore_errors=True)
    for empty in (folder / FIGURES, folder / COMPARISONS):
        with contextlib.suppress(OSError):
            empty.rmdir()  # only if empty: a file of someone else's stays, with its folder
    (folder / MANIFEST).unlink()
