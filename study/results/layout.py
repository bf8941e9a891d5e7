"""The layout of a results folder: the names of its files and the version of its format.

A results folder ``DIR``::

    manifest.json        format_version, the resolved config, versions, devices, timings, status
    .study-results       marks a folder of ours that has no manifest (a committed one)
    runs.parquet         a row per setting and initialization
    curves.parquet       a row per setting, initialization and logged step (when recorded)
    summary.csv          a row per setting, counts and proportions
    figures/             PNG and PDF (copies of figures drawn before are kept outside the
                         folder, in the figure cache: :mod:`study.results.figure_cache`)
    report.md, .html     the report
    comparisons/         ``study compare`` tables
    .partial/            finished structural groups of an unfinished run (their runs, curves
                         and timings)
    run.lock             exists while a run writes into DIR

Only names live here; which module reads or writes each file is said in
:mod:`study.results`.
"""

# Bumped whenever the meaning or layout of a results folder changes incompatibly.
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
RUNS = "runs.parquet"
SUMMARY = "summary.csv"
CURVES = "curves.parquet"
FIGURES = "figures"
FIGURE_DPI = 200  # the resolution of the saved figures (pixels per inch)
COMPARISONS = "comparisons"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PARTIAL = ".partial"
LOCK = "run.lock"
# Marks a results folder of ours without its manifest (which is machine- and time-specific and
# so left out of git): a committed results folder, e.g. results/default in a fresh checkout.
MARKER = ".study-results"
MARKER_TEXT = "a results folder of `study run`: its runs, summary and figures may be replaced\n"
