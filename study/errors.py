"""The errors a user can cause, each with a one-line message; ``study.cli`` maps them to exit codes.

* :class:`ConfigError`: bad input (config, flag, data file or results folder to read): exit 2.
* :class:`FormatError`: a results folder written in a format this version cannot read: exit 2.
* :class:`FolderError`: the results folder is in use or holds another config's results: exit 3.
"""


class ConfigError(ValueError):
    """A malformed config, flag or data file; its message is one line for the user."""


class FormatError(ConfigError):
    """A results folder written in a format this version cannot read."""


class FolderError(RuntimeError):
    """The results folder is in use by another run, or holds another config's results."""
