"""The ``study`` command line: run, plot, report, compare, plan, bench, info.

This is the only module that knows about argparse and exit statuses: each command's handler maps
its flags to plain arguments of a library function and prints what it returns.

Exit status (``shared/INTERFACE.md``): 0 success; 2 bad input or usage; 3 results folder locked or
made by another config; 130 interrupted; 1 anything else. Errors are one line, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from study.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, ConfigError, FolderError

EXIT_USAGE = ConfigError.exit_status  # a malformed flag is bad input, like a malformed config


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, unless its help already says it or it is a plain flag."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def _formatter(prog):
    return _HelpFormatter(prog, max_help_position=32)


# --------------------------------------------------------------------------------------------
# The parser: one function per command.
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="study",
        description="A JAX Monte Carlo laboratory for the dying-ReLU problem.",
        formatter_class=_formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for add in (_add_run, _add_plot, _add_report, _add_compare, _add_plan, _add_bench):
        add(commands)
    commands.add_parser("info", help="JAX version, backend and devices", formatter_class=_formatter)
    return parser


def _add_run(commands) -> None:
    from study.config import describe_keys

    run = commands.add_parser(
        "run",
        help="run a sweep of settings from a TOML config",
        formatter_class=_formatter,
        description="Train n_inits initializations of every setting of CONFIG's grid and write "
        "runs.parquet, summary.csv, manifest.json and figures into the results folder.",
        epilog="config keys (a list value is a sweep axis; --set KEY=VALUE overrides one):\n"
        + describe_keys(),
    )
    run.add_argument(
        "config",
        nargs="?",
        default=None,
        help="TOML config file (default: the default study, study/configs/default.toml)",
    )
    run.add_argument("--out", metavar="DIR", help="results folder (default: results/<name>/)")
    run.add_argument(
        "--n-inits", type=int, metavar="N", help="initializations per setting (default: config's)"
    )
    run.add_argument("--seed", type=int, metavar="S", help="study seed (default: the config's)")
    run.add_argument(
        "--chunk-size",
        type=int,
        metavar="K",
        help="(setting, initialization) pairs per compiled call (default: from the device's "
        "memory)",
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
        "--force", action="store_true", help="recompute everything, even over another config's"
    )
    _add_figures(run)
    run.add_argument(
        "--no-figures", dest="figures", action="store_const", const="none", help="--figures none"
    )
    _add_cpu_devices(run)
    _add_no_compile_cache(run)
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="draw every figure afresh and keep none in the cache of figures "
        "(${STUDY_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/study}/figures); also compile every "
        "program afresh (implies --no-compile-cache)",
    )
    _add_distributed(run)


# study.distributed's TIMEOUT_ENV, JOIN_S and HEARTBEAT_S, written out: that module imports JAX,
# which building the parser must not (tests/test_odd_input.py holds the two alike).
_TIMEOUT_HELP = (
    "STUDY_DISTRIBUTED_TIMEOUT (seconds, default 300) bounds the wait for the peers to join: a "
    "process still waiting after a few seconds says for what, and stops (status 1) when that "
    "time has passed; a peer silent for 10 s (or that timeout, if shorter) is lost."
)


def _add_distributed(run) -> None:
    dist = run.add_argument_group(
        "several processes or hosts (jax.distributed)",
        "Every process runs the same command; process 0 writes DIR. The environment variable "
        + _TIMEOUT_HELP,
    )
    dist.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="address of process 0 (default: detected from SLURM/Open MPI, if any)",
    )
    dist.add_argument("--num-processes", type=int, metavar="P", help="number of processes")
    dist.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0 to P-1")


def _add_figures(parser) -> None:
    parser.add_argument(
        "--figures",
        choices=("png", "pdf", "none"),
        default="png",
        help="format of the figures, or none to draw none",
    )


def _add_cpu_devices(parser) -> None:
    parser.add_argument(
        "--cpu-devices",
        type=int,
        metavar="D",
        help="split the CPU into D JAX devices and shard the initializations over them "
        "(default: one per CPU core, in a single-process run; the results are the same bits)",
    )


def _add_no_compile_cache(parser) -> None:
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="compile every program anew instead of loading it from the cache of compiled "
        "programs (${STUDY_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/study}/jax, or "
        "JAX_COMPILATION_CACHE_DIR)",
    )


def _figure_formats(figures: str) -> tuple[str, ...]:
    return () if figures == "none" else (figures,)


def _add_plot(commands) -> None:
    plot = commands.add_parser(
        "plot", help="redraw the figures of a results folder", formatter_class=_formatter
    )
    plot.add_argument("dir", metavar="DIR", help="results folder written by study run")
    _add_figures(plot)
    plot.add_argument(
        "--no-cache",
        action="store_true",
        help="draw every figure afresh and keep none in the cache of figures (else a figure "
        "drawn before from the same inputs is copied from "
        "${STUDY_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/study}/figures)",
    )


def _add_report(commands) -> None:
    report = commands.add_parser(
        "report",
        help="write report.md and report.html for a results folder",
        formatter_class=_formatter,
    )
    report.add_argument("dir", metavar="DIR", help="results folder written by study run")


def _add_compare(commands) -> None:
    compare = commands.add_parser(
        "compare",
        help="test differences between levels of a key",
        formatter_class=_formatter,
        description="For every pair of levels a < b of KEY (within the other settings), or with "
        "--reference the reference as a against every other level as b, estimate the "
        "difference b - a of a metric with its confidence interval and test it, Holm-corrected "
        "across the table. The networks are compared in pairs when the folders drew them shared "
        '(pairing = "shared" in every folder, one seed) and both levels hold the same '
        "initializations: a pair counts only if neither of its networks diverged; for a "
        "proportion McNemar's exact test and Newcombe's paired interval, with k_a_only and "
        "k_b_only the networks with the event under a only and under b only (for p_dead_end: "
        "the networks b saved and killed); for a mean, the paired t test. Otherwise the levels "
        "are independent samples: Fisher's exact test for small counts or a two-proportion z "
        "test, with Newcombe's interval; Welch's t test for a mean. The intervals are per "
        "comparison, not adjusted; the p values (p_holm) and the significant column are. "
        "Writes DIR/comparisons/KEY[.METRIC].csv (into the first DIR).",
    )
    compare.add_argument("dirs", metavar="DIR", nargs="+", help="results folders")
    compare.add_argument(
        "--by",
        required=True,
        metavar="KEY",
        help="setting key to compare, e.g. data.offset, or variant",
    )
    compare.add_argument(
        "--metric",
        default="p_dead_end",
        help="what to compare: a proportion (p_dead_init, p_dead_end, p_revived, p_diverged) or "
        "a mean (final_loss, final_accuracy, or any numeric column of runs.parquet, e.g. "
        "initial_loss)",
    )
    compare.add_argument("--alpha", type=float, default=0.05, help="family-wise error level")
    _add_reference(compare)


def _add_reference(parser) -> None:
    parser.add_argument(
        "--reference",
        metavar="LEVEL",
        help="compare every other level of KEY with this one (a = LEVEL) instead of every pair "
        "(default: for --by variant the folder's reference variant, its config's reference or "
        "baseline; for other keys every pair)",
    )


def _add_plan(commands) -> None:
    plan = commands.add_parser(
        "plan",
        help="initializations needed, from a pilot run",
        formatter_class=_formatter,
        description="From a pilot results folder, for every pair of levels a < b of KEY (within "
        "the other settings; or --reference against each other level): the initializations "
        "each setting needs for a Wilson interval of P(metric) of the given half-width about "
        "its pilot proportion, and the initializations per level needed to detect the given "
        "difference with the given power: with independent draws (two-proportion z test, from "
        "the pilot's p_a to p_a -+ difference towards 1/2) and with shared draws (McNemar's "
        "test, Connor 1987, from the pilot's share of discordant pairs, when the pilot is "
        "paired). alpha is split over the comparisons (Bonferroni), so the sizes hold under "
        "compare's Holm correction. Prints a line per comparison and writes "
        "DIR/comparisons/plan_KEY[.METRIC].csv.",
    )
    plan.add_argument("dir", metavar="DIR", help="pilot results folder")
    plan.add_argument(
        "--by", required=True, metavar="KEY", help="setting key to compare, e.g. variant"
    )
    plan.add_argument(
        "--metric",
        default="p_dead_end",
        help="proportion to plan for: p_dead_init, p_dead_end, p_revived, p_diverged",
    )
    plan.add_argument(
        "--difference",
        type=float,
        default=0.02,
        help="difference of proportions to detect, in (0, 1)",
    )
    plan.add_argument(
        "--half-width",
        type=float,
        default=0.01,
        help="wanted half-width of each setting's interval, in (0, 0.5)",
    )
    plan.add_argument("--power", type=float, default=0.8, help="wanted power, in (0, 1)")
    plan.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="family-wise error level (the intervals are 1 - alpha)",
    )
    _add_reference(plan)


def _add_bench(commands) -> None:
    bench = commands.add_parser("bench", help="benchmark the engine", formatter_class=_formatter)
    bench.add_argument(
        "--quick", action="store_true", help="a small workload for a smoke test (seconds)"
    )
    bench.add_argument(
        "--n-inits", type=int, metavar="N", help="initializations of the main workload (16384)"
    )
    bench.add_argument("--steps", type=int, metavar="T", help="steps of the main workload (1000)")
    bench.add_argument(
        "--no-alternatives",
        action="store_true",
        help="skip the two simple formulations kept for comparison",
    )
    bench.add_argument(
        "--no-scaling", action="store_true", help="skip the scaling in initializations and steps"
    )
    _add_cpu_devices(bench)
    bench.add_argument(
        "--chunk-size",
        type=int,
        metavar="C",
        help="initializations per compiled call (default: automatic)",
    )
    bench.add_argument(
        "--scr",
        action="store_true",
        help="instead: the continual-learning workload (Dohare et al.'s slowly-changing "
        "regression), 100 runs x 3 million examples, against the same runs one at a time",
    )
    bench.add_argument(
        "--scr-steps", type=int, metavar="T", help="examples per run of --scr (3000000)"
    )
    bench.add_argument("--scr-runs", type=int, metavar="R", help="runs of --scr (100)")
    bench.add_argument(
        "--scr-intervention",
        default="none",
        metavar="NAME",
        help="--scr also runs the learners with this train.intervention (e.g. cbp, at its "
        "default strengths) and reports its cost per example against plain backprop's",
    )
    bench.add_argument(
        "--structures",
        action="store_true",
        help="instead: the rate of four fixed structures (the question's 2-1-1, width 4 depth 2, "
        "width 64 depth 3, the SCR learner) as a share of this machine's peak, measured first "
        "by microbenchmarks (float32 arithmetic, memory bandwidth); with the operations and "
        "bytes per initialization-step counted from each structure, and the bytes XLA counts "
        "for its compiled step (a few seconds each; --quick: smaller, --full: the full sizes, "
        "minutes)",
    )
    bench.add_argument(
        "--full", action="store_true", help="--structures at the full sizes (several minutes)"
    )
    bench.add_argument("--json", metavar="FILE", help="also write the JSON here")
    _add_no_compile_cache(bench)


# --------------------------------------------------------------------------------------------
# The commands: flags to library calls.
# --------------------------------------------------------------------------------------------


def _run(args) -> int:
    from study import distributed, runner, supervisor

    if supervisor.needs_supervisor(args.coordinator, args.num_processes, args.process_id):
        return supervisor.supervise(args.argv)  # one line, not JAX's abort, if a peer dies
    single = (args.coordinator, args.num_processes, args.process_id) == (None, None, None)
    if args.cpu_devices is not None or (single and distributed.cluster_environment() is None):
        from study import runtime

        runtime.configure(devices="auto" if args.cpu_devices is None else args.cpu_devices)
    several = distributed.initialize(
        args.coordinator,
        args.num_processes,
        args.process_id,
        log=None if args.quiet else _log,
        waiting=_log,  # even when quiet: a process that waits says for what
    )
    try:
        study, folder = runner.run_config(
            args.config,
            out=args.out,
            overrides=args.overrides,
            n_inits=args.n_inits,
            seed=args.seed,
            chunk_size=args.chunk_size,
            force=args.force,
            quiet=args.quiet,
            figures=_figure_formats(args.figures),
            compile_cache=not (args.no_compile_cache or args.no_cache),
            figure_cache=not args.no_cache,
        )
    except distributed.PeerError as err:
        if not several:
            raise
        # A lost peer would also fail jax.distributed's shutdown barrier at exit, which aborts
        # the process with a C++ trace; stop here with the one-line message instead.
        print(f"study run: error: {err}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(EXIT_ERROR)
    if not args.quiet and distributed.is_writer():
        # with variants, the first comparison to suggest is between them
        _print_answer(folder, ("variant", *study.axes) if study.variants else study.axes)
    return EXIT_OK


def _print_answer(folder, axes) -> None:
    """What the run found, in a few lines, and the commands to run next."""
    from study import analysis, report, results

    print(folder)
    opened = results.ResultsFolder.open(folder)
    reference = analysis.reference_of(opened.manifest.config)
    for line in report.headline(opened.summary(), reference):
        print(f"  {line}")
    print(f"next: study report {folder}   (claims, tables and figures in report.html)")
    if axes:
        print(f"      study compare {folder} --by {axes[0]}   (tests between levels)")


def _log(text: str) -> None:
    print(f"study run: {text}", file=sys.stderr, flush=True)


def _plot(args) -> int:
    from study import plots, results

    folder = results.ResultsFolder.open(args.dir)
    paths = plots.plot_results(
        folder, formats=_figure_formats(args.figures), cache=not args.no_cache
    )
    print(f"wrote {len(paths)} files to {os.path.join(args.dir, results.FIGURES)}")
    return EXIT_OK


def _report(args) -> int:
    from study import report, results

    md_path, html_path = report.write_report(results.ResultsFolder.open(args.dir))
    print(f"wrote {md_path} and {html_path}")
    return EXIT_OK


def _compare(args) -> int:
    import pandas as pd

    from study import analysis, results

    folders = [results.ResultsFolder.open(folder) for folder in args.dirs]
    runs = results.runs_of(folders)
    configs = [folder.manifest.config for folder in folders]
    table = analysis.compare(
        runs,
        args.by,
        args.metric,
        args.alpha,
        shared_draws=analysis.shares_draws(
            [(f.manifest.pairing, f.manifest.seed) for f in folders]
        ),
        reference=_reference(args, configs[0]),
    )
    path = folders[0].write_comparison(analysis.comparison_name(args.by, args.metric), table)
    if table.empty:
        print(f"no pair of {args.by} levels shares the other settings; wrote {path}")
        return EXIT_OK
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {path}")
    return EXIT_OK


def _reference(args, config) -> str | None:
    """--reference, or for --by variant the folder's reference variant."""
    from study import analysis

    if args.reference is None and args.by == "variant":
        return analysis.reference_of(config)
    return args.reference


def _plan(args) -> int:
    from study import analysis, planning, results

    folder = results.ResultsFolder.open(args.dir)
    table = planning.plan(
        folder.runs(),
        args.by,
        args.metric,
        difference=args.difference,
        half_width=args.half_width,
        power=args.power,
        alpha=args.alpha,
        reference=_reference(args, folder.manifest.config),
        shared_draws=analysis.shares_draws([(folder.manifest.pairing, folder.manifest.seed)]),
    )
    path = folder.write_comparison(planning.plan_name(args.by, args.metric), table)
    if table.empty:
        print(f"no pair of {args.by} levels shares the other settings; wrote {path}")
        return EXIT_OK
    others = list(table.columns[2 : table.columns.get_loc("level_a")])
    for row in table.to_dict("records"):
        print(planning.describe(row, others))
    print(f"wrote {path}")
    return EXIT_OK


def _bench(args) -> int:
    import json

    if args.json:
        _check_output_file("--json", args.json)  # at once, not after minutes of benchmark
    if args.full and not args.structures:
        raise ConfigError("--full: only with --structures (the full sizes of its table)")
    if args.structures and {args.n_inits, args.steps, args.chunk_size} != {None}:
        raise ConfigError(
            "--n-inits, --steps, --chunk-size: not with --structures (its sizes are fixed; "
            "allowed: --quick or --full)"
        )
    if args.scr and args.structures:
        raise ConfigError("--scr and --structures: choose one (--structures has an SCR row)")
    if args.full and args.quick:
        raise ConfigError("--full and --quick: choose one size for --structures")
    if args.scr:
        result, table = _bench_scr(args)
    elif args.structures:
        result, table = _bench_structures(args)
    else:
        result, table = _bench_engine(args)
    print(table)
    line = json.dumps(result)
    print(line)
    if args.json:
        from study.results import atomic_write

        atomic_write(args.json, lambda path: path.write_text(line + "\n"))
    return EXIT_OK


def _bench_progress(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def _bench_scr(args) -> tuple[dict, str]:
    from study import bench_scr, runtime

    runtime.configure(
        devices="auto" if args.cpu_devices is None else args.cpu_devices,
        compile_cache=not args.no_compile_cache,
    )
    result = bench_scr.benchmark_scr(
        runs=bench_scr.SCR.runs if args.scr_runs is None else args.scr_runs,
        steps=bench_scr.SCR.steps if args.scr_steps is None else args.scr_steps,
        progress=_bench_progress,
        intervention=args.scr_intervention,
    )
    return result, bench_scr.format_scr(result)


def _bench_structures(args) -> tuple[dict, str]:
    from study import bench_structures, runtime

    runtime.configure(
        devices="auto" if args.cpu_devices is None else args.cpu_devices,
        compile_cache=not args.no_compile_cache,
    )
    size = "quick" if args.quick else "full" if args.full else "short"
    result = bench_structures.structures_table(size=size, progress=_bench_progress)
    table = bench_structures.format_structures(result)
    return result, table + "\n\n" + bench_structures.markdown_table(result)


def _bench_engine(args) -> tuple[dict, str]:
    from study import bench

    result = bench.benchmark(
        quick=args.quick,
        n_inits=args.n_inits,
        steps=args.steps,
        chunk_size=args.chunk_size,
        cpu_devices=args.cpu_devices,
        alternatives=not args.no_alternatives,
        scaling=not args.no_scaling,
        compile_cache=not args.no_compile_cache,
        progress=_bench_progress,
    )
    return result, bench.format_table(result)


def _check_output_file(flag: str, name: str) -> None:
    """Refuse (ConfigError) a file that the command could not write when it ends: a folder, a
    broken link, a file or a folder that cannot be written."""
    import tempfile
    from pathlib import Path

    path = Path(name)
    allowed = "give a file name in an existing folder you may write, e.g. bench.json"
    try:
        if path.is_dir() or (os.path.lexists(path) and not path.exists()):
            what = "a folder" if path.is_dir() else "a broken link or a link loop"
            raise ConfigError(f"{flag} {name!r}: {what}; {allowed}")
        if path.exists():
            open(path, "ab").close()  # may it be written? (nothing is written to it)
        else:
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".study-check-"):
                pass
    except OSError as err:
        reason = err.strerror or err
        raise ConfigError(f"{flag} {name!r}: cannot write it ({reason}); {allowed}") from None


def _info(args) -> int:
    import jax

    from study import __version__, distributed, runtime

    if distributed.cluster_environment() is None:
        runtime.configure(devices="auto")  # the devices study run would use

    print(f"study {__version__}")
    print(f"jax {jax.__version__}, backend {jax.default_backend()}")
    print(f"processes: {jax.process_count()} (this is {jax.process_index()})")
    for device in jax.devices():
        print(f"  {device.platform}:{device.id}  {device.device_kind}")
    return EXIT_OK


COMMANDS = {
    "run": _run,
    "plot": _plot,
    "report": _report,
    "compare": _compare,
    "plan": _plan,
    "bench": _bench,
    "info": _info,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # a multi-process run reruns the same command under a supervisor
    if args.command in ("run", "plot", "report"):
        _draw_to_files()
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, FolderError) as err:
        return _fail(args.command, f"error: {err}", err.exit_status)
    except KeyboardInterrupt:
        message = "interrupted; run the same command again to resume"
        return _fail(args.command, message, EXIT_INTERRUPTED)
    except OSError as err:
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        return _fail(args.command, f"error: {err.strerror or err}{where}", EXIT_ERROR)
    except Exception as err:  # anything else: one line, never a traceback (STUDY_TRACEBACK=1)
        if os.environ.get("STUDY_TRACEBACK"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return _fail(args.command, f"error: {type(err).__name__}: {message}", EXIT_ERROR)


def _draw_to_files() -> None:
    """matplotlib's Agg backend: figures go to files, no display is needed. Chosen through the
    environment when matplotlib is not imported yet: a rerun whose figures all come from the
    cache never imports it."""
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")
    else:
        os.environ["MPLBACKEND"] = "Agg"


def _fail(command: str, message: str, status: int) -> int:
    print(f"study {command}: {message}", file=sys.stderr)
    return status


def console() -> None:
    """The ``study`` executable: :func:`main`, and on Ctrl-C an exit with status 130 at once.

    The first Ctrl-C raises KeyboardInterrupt and later ones are ignored, so the clean-up runs
    to its end: by the time ``main`` returns, the lock is released, temporary files are removed
    and the finished groups are on disk. The process then exits without the interpreter's
    teardown, during which XLA's threads, still busy with the interrupted computation, could
    crash it (a segmentation fault in most tries before).
    """
    try:
        signal.signal(signal.SIGINT, _interrupt_once)
        status = main()
    except KeyboardInterrupt:  # while the command was still loading, before it did anything
        status = _fail_early()
    sys.stdout.flush()
    sys.stderr.flush()
    if status == EXIT_INTERRUPTED:
        os._exit(status)
    sys.exit(status)


def _fail_early() -> int:
    print(f"study: {INTERRUPTED_EARLY}", file=sys.stderr)
    return EXIT_INTERRUPTED


# What a Ctrl-C while Python loads the command says (study/__main__.py says it too).
INTERRUPTED_EARLY = "interrupted before it started; nothing was written"


def _interrupt_once(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    console()
