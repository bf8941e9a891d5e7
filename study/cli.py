"""The ``study`` command line: run, plot, report, compare, bench, info.

Exit status (``shared/INTERFACE.md``): 0 success; 2 bad input or usage; 3 results folder locked or
made by another config; 1 anything else. Errors are one line, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from study.config import ConfigError, FolderError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FOLDER = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless its help already says it or it is a plain flag."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def _formatter(prog):
    return _HelpFormatter(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="study",
        description="A JAX Monte Carlo laboratory for the dying-ReLU problem.",
        formatter_class=_formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run a sweep of settings from a TOML config",
        formatter_class=_formatter,
        description="Train n_inits initializations of every setting of CONFIG's grid and write "
        "runs.parquet, summary.csv, manifest.json and figures into the results folder.",
    )
    run.add_argument(
        "config",
        nargs="?",
        default=None,
        help="TOML config file (default: the default study, study/configs/default.toml)",
    )
    run.add_argument(
        "--out", metavar="DIR", default=None, help="results folder (default: results/<name>/)"
    )
    run.add_argument(
        "--n-inits",
        type=int,
        metavar="N",
        default=None,
        help="initializations per setting (default: the config's n_inits)",
    )
    run.add_argument(
        "--seed",
        type=int,
        metavar="S",
        default=None,
        help="study seed (default: the config's seed)",
    )
    run.add_argument(
        "--chunk-size",
        type=int,
        metavar="K",
        default=None,
        help="(setting, initialization) pairs per compiled call (default: from the "
        "device's memory)",
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set model.width=[1,4] (repeatable)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument(
        "--force",
        action="store_true",
        help="recompute everything, even over another config's results",
    )
    run.add_argument("--no-figures", action="store_true", help="skip drawing figures")
    dist = run.add_argument_group(
        "several processes or hosts (jax.distributed)",
        "Every process runs the same command; process 0 writes DIR. The environment variable "
        "STUDY_DISTRIBUTED_TIMEOUT (seconds) bounds the wait for peers to join or answer.",
    )
    dist.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        default=None,
        help="address of process 0 (default: detected from SLURM/Open MPI, if any)",
    )
    dist.add_argument(
        "--num-processes", type=int, metavar="P", default=None, help="number of processes"
    )
    dist.add_argument(
        "--process-id", type=int, metavar="I", default=None, help="this process's index, 0 to P-1"
    )

    plot = commands.add_parser(
        "plot", help="redraw the figures of a results folder", formatter_class=_formatter
    )
    plot.add_argument("dir", metavar="DIR", help="results folder written by study run")

    report = commands.add_parser(
        "report",
        help="write report.md and report.html for a results folder",
        formatter_class=_formatter,
    )
    report.add_argument("dir", metavar="DIR", help="results folder written by study run")

    compare = commands.add_parser(
        "compare",
        help="test differences in proportion between levels of a key",
        formatter_class=_formatter,
        description="For every pair of levels of KEY (within the other settings), test the "
        "difference in a proportion (Fisher's exact test for small counts, a two-proportion z "
        "test otherwise), Holm-corrected across the table. The confidence interval of each "
        "difference (Newcombe) is per comparison, not adjusted; the p values and the "
        "significant column are.",
    )
    compare.add_argument("dirs", metavar="DIR", nargs="+", help="results folders")
    compare.add_argument(
        "--by", required=True, metavar="KEY", help="setting key to compare, e.g. data.offset"
    )
    compare.add_argument(
        "--metric",
        default="p_dead_end",
        help="proportion to compare: p_dead_init, p_dead_end, p_revived, p_diverged",
    )
    compare.add_argument("--alpha", type=float, default=0.05, help="family-wise error level")

    bench = commands.add_parser("bench", help="benchmark the engine", formatter_class=_formatter)
    bench.add_argument(
        "--quick", action="store_true", help="a small workload for a smoke test (seconds)"
    )
    bench.add_argument(
        "--n-inits",
        type=int,
        default=None,
        metavar="N",
        help="initializations of the main workload (default 16384)",
    )
    bench.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="T",
        help="steps of the main workload (default 1000)",
    )
    bench.add_argument(
        "--no-alternatives",
        action="store_true",
        help="skip the two simple formulations kept for comparison",
    )
    bench.add_argument(
        "--no-scaling", action="store_true", help="skip the scaling in initializations and steps"
    )
    bench.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        metavar="D",
        help="split the CPU into D JAX devices and shard the initializations over them",
    )
    bench.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        metavar="C",
        help="initializations per compiled call (default: automatic)",
    )
    bench.add_argument("--json", metavar="FILE", default=None, help="also write the JSON here")

    commands.add_parser("info", help="JAX version, backend and devices", formatter_class=_formatter)
    return parser


def _info(args) -> int:
    import jax

    from study import __version__

    print(f"study {__version__}")
    print(f"jax {jax.__version__}, backend {jax.default_backend()}")
    print(f"processes: {jax.process_count()} (this is {jax.process_index()})")
    for device in jax.devices():
        print(f"  {device.platform}:{device.id}  {device.device_kind}")
    return EXIT_OK


def _run(args) -> int:
    from study import runner

    return runner.main(args)


def _plot(args) -> int:
    from study import plots

    return plots.main(args)


def _report(args) -> int:
    from study import report

    return report.main(args)


def _compare(args) -> int:
    from study import analysis

    return analysis.main(args)


def _bench(args) -> int:
    from study import bench

    return bench.main(args)


COMMANDS = {
    "run": _run,
    "plot": _plot,
    "report": _report,
    "compare": _compare,
    "bench": _bench,
    "info": _info,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"study {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except FolderError as err:
        print(f"study {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FOLDER
    except KeyboardInterrupt:
        print(
            f"study {args.command}: interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except OSError as err:
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"study {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return EXIT_ERROR
    except (
        Exception
    ) as err:  # anything else: one line, never a traceback (STUDY_TRACEBACK=1 shows it)
        if os.environ.get("STUDY_TRACEBACK"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(f"study {args.command}: error: {type(err).__name__}: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
