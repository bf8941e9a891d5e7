"""study: a JAX Monte Carlo laboratory for the dying-ReLU problem.

The public API::

    import study
    study.configure(devices="auto", compile_cache=True)    # optional, before JAX runs
    setting = study.make_setting(data_offset=2.0, model_width=1)
    runs = study.simulate(setting, n_inits=4000, seed=0)   # a row per initialization
    summary = study.analysis.summarize(runs)                # a row per setting

Every name is imported on first use: ``import study`` (and so the ``study`` command) starts in
milliseconds, and reading and plotting saved results (``study.results``, ``study.analysis``,
``study.plots``) never starts JAX.
"""

import importlib

__version__ = "0.1.0"

# name -> the module that defines it; a module maps to itself.
_LAZY = {
    "ConfigError": "study.errors",
    "FolderError": "study.errors",
    "FormatError": "study.errors",
    "Numeric": "study.config",
    "Setting": "study.config",
    "Structure": "study.config",
    "Study": "study.config",
    "load_study": "study.config",
    "make_setting": "study.config",
    "simulate": "study.engine",
    "simulate_curves": "study.engine",
    "run_group": "study.engine",
    "Engine": "study.engine",
    "configure": "study.runtime",
    "make_train": "study.train",
    "Metrics": "study.train",
    "analysis": "study.analysis",
    "config": "study.config",
    "data": "study.data",
    "plots": "study.plots",
    "report": "study.report",
    "results": "study.results",
    "runner": "study.runner",
    "runtime": "study.runtime",
    "theory": "study.theory",
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'study' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    return module if module.__name__ == f"study.{name}" else getattr(module, name)


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
