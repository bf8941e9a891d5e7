"""The manifest of a results folder: what a run records about itself in ``manifest.json``.

:class:`Manifest` is its contents; :func:`read_manifest` reads it, refusing (FormatError) one of
another ``format_version``; :func:`write_manifest` writes it (atomically) with the marker file
that tells a folder of ours. :func:`file_digest` names the data files a run read;
:attr:`Manifest.pairing` says whether a folder's settings drew the same numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from study.errors import ConfigError, FormatError
from study.results import atomic
from study.results.layout import FORMAT_VERSION, MANIFEST, MARKER, MARKER_TEXT

# The pairing of a folder whose config does not record one: every folder written before the
# key existed, when each setting drew its own numbers.
PAIRING_BEFORE_THE_KEY = "independent"


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` records about a run (``shared/INTERFACE.md``).

    ``config`` is the fully resolved config (a list of values on a sweep axis); ``data_files``
    maps each CSV file the run read to its SHA-256; ``status`` is ``"running"`` until every group
    is written, then ``"complete"``. The fields after ``platform`` exist once the run finished.
    """

    config: dict
    status: str | None = "complete"
    name: str = ""
    data_files: dict = dataclasses.field(default_factory=dict)
    axes: tuple[str, ...] = ()
    versions: dict = dataclasses.field(default_factory=dict)
    backend: str | None = None
    devices: tuple[dict, ...] = ()
    process_count: int = 1
    platform: str = ""
    started: str | None = None
    finished: str | None = None
    n_settings: int | None = None
    n_rows: int | None = None
    timings: dict | None = None
    figures: tuple[str, ...] | None = None
    format_version: int = FORMAT_VERSION

    @property
    def seed(self) -> int | None:
        """The study seed, which fixes the data sets that closed forms are evaluated on."""
        seed = self.config.get("seed")
        return None if seed is None else int(seed)

    @property
    def pairing(self) -> str:
        """``"shared"`` when initialization i of every setting drew the same numbers (paired
        comparisons), ``"independent"`` when each drew its own (a folder from before the key)."""
        return str(self.config.get("pairing", PAIRING_BEFORE_THE_KEY))

    @property
    def complete(self) -> bool:
        """Whether the run finished: every group written, the tables with it."""
        return self.status == "complete"

    def to_json(self) -> dict:
        """The JSON object, ``format_version`` first; fields not yet known are left out."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        ordered = {"format_version": fields.pop("format_version"), **fields}
        ordered["axes"], ordered["devices"] = list(self.axes), list(self.devices)
        if self.figures is not None:
            ordered["figures"] = list(self.figures)
        return {name: value for name, value in ordered.items() if value is not None}

    @classmethod
    def from_json(cls, value: dict) -> Manifest:
        """The manifest of a JSON object (fields it does not know are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {name: v for name, v in value.items() if name in known}
        fields.setdefault("status", None)  # a manifest that does not say "complete" is not
        fields["axes"] = tuple(fields.get("axes", ()))
        fields["devices"] = tuple(fields.get("devices", ()))
        if fields.get("figures") is not None:
            fields["figures"] = tuple(fields["figures"])
        return cls(**fields)


def _format_error(folder: Path, found: Any) -> FormatError:
    return FormatError(
        f"{str(folder)!r} holds results in format version {found!r}; this version of study "
        f"reads format {FORMAT_VERSION}: rerun `study run` with --force (or another --out) "
        "to recompute them"
    )


def read_manifest(folder: str | Path, *, required: bool = True) -> Manifest | None:
    """``DIR/manifest.json``, checked to be in a format this version reads.

    Raises FormatError for a manifest of another ``format_version`` or one that is not valid
    JSON, and ConfigError when it is missing and ``required`` (else returns None).
    """
    folder = Path(folder)
    if required and not folder.is_dir():
        raise ConfigError(f"{str(folder)!r}: no such results folder")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"{str(folder)!r}: no {MANIFEST}; not a results folder of `study run`"
            ) from None
        return None
    except (ValueError, UnicodeDecodeError):
        raise _format_error(folder, "unreadable") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise _format_error(folder, found)
    if not isinstance(manifest.get("config"), dict):
        raise _format_error(folder, "unreadable")
    return Manifest.from_json(manifest)


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``DIR/manifest.json`` (and the marker file, if it is not there yet)."""
    folder = Path(folder)
    if not has_marker(folder):
        atomic.atomic_write(folder / MARKER, lambda path: path.write_text(MARKER_TEXT))
    return atomic.write_json(folder / MANIFEST, manifest.to_json())


def has_marker(folder: Path) -> bool:
    """Whether ``folder`` holds our marker file (with our text)."""
    try:
        return (folder / MARKER).read_text() == MARKER_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def has_our_manifest(folder: Path) -> bool:
    """Whether ``folder/manifest.json`` is one of ours (of any format version)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(manifest, dict) and isinstance(manifest.get("format_version"), int)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (records which data a run used)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
