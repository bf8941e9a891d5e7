"""``python -m study ...`` is the same as the ``study`` command."""

from study.cli import console

console()
