"""Benchmark the engine: the same as ``study bench`` (see ``docs/performance.md``).

python scripts/benchmark.py            # the full workload (a few minutes on 2 cores)
python scripts/benchmark.py --quick    # a smoke test
"""

import sys

from study.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
