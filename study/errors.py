"""The errors a user can cause, each with a one-line message and the exit status it ends in.

The exit statuses of ``shared/INTERFACE.md`` are kept here, in one place; the command line
(``study.cli``), the multi-process supervisor (``study.supervisor``) and the collectives that
tell every process how one ended (``study.distributed``) read them:

* :data:`EXIT_OK` (0): success.
* :class:`ConfigError` (2): bad input (config, flag, data file or results folder to read).
* :class:`FormatError` (2): a results folder written in a format this version cannot read.
* :class:`FolderError` (3): the results folder is in use or holds another config's results.
* :data:`EXIT_INTERRUPTED` (130): interrupted (Ctrl-C); finished groups are kept.
* :data:`EXIT_ERROR` (1): anything else.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class ConfigError(ValueError):
    """A malformed config, flag or data file; its message is one line for the user."""

    exit_status: ClassVar[int] = 2


class FormatError(ConfigError):
    """A results folder written in a format this version cannot read."""


class FolderError(RuntimeError):
    """The results folder is in use by another run, or holds another config's results."""

    exit_status: ClassVar[int] = 3


def exit_status(error: BaseException) -> int:
    """The exit status of a command that stopped on ``error``: its class's for the errors above,
    :data:`EXIT_INTERRUPTED` for Ctrl-C, :data:`EXIT_ERROR` for anything else."""
    if isinstance(error, ConfigError | FolderError):
        return error.exit_status
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_ERROR
