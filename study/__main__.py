"""``python -m study ...`` is the same as the ``study`` command."""

import sys

try:
    from study.cli import console
except KeyboardInterrupt:  # Ctrl-C while Python loads the command: nothing was done yet
    print("study: interrupted before it started; nothing was written", file=sys.stderr)
    sys.exit(130)  # study.errors.EXIT_INTERRUPTED, not imported: imports were just cut off

console()
