"""Progress of ``study run``: a bar on a terminal, log lines otherwise, nothing when quiet.

The estimate of the time left is honest about compiling: each group compiles once, on its first
chunk, and that time says nothing about how fast the rest will train. So the training rate is
measured with compile time taken out, and the estimate adds the mean compile time once for each
group still to compile. Until one chunk has trained there is no estimate ("ETA ?"), and the
display says that the group is compiling.
"""

from __future__ import annotations

import math
import sys
import time


class Progress:
    """Counts (setting, initialization) pairs and initialization-steps; silent by itself."""

    def __init__(self, n_settings: int, n_inits: int, n_groups: int, total_init_steps=None):
        self.n_settings, self.n_inits, self.n_groups = n_settings, n_inits, n_groups
        self.total_init_steps = total_init_steps or n_settings * n_inits
        self.pairs = 0  # done, resumed ones included
        self.init_steps_done = 0  # resumed ones included
        self.init_steps = 0  # trained by this process, in ``train_s`` seconds
        self.train_s = 0.0
        self.compile_s: list[float] = []  # per group compiled so far
        self.groups_left = n_groups
        self.compiling = False  # the current group has not trained its first chunk yet
        self.start = time.perf_counter()
        self.last = self.start

    @property
    def total(self) -> int:
        return self.n_settings * self.n_inits

    @property
    def settings_done(self) -> int:
        return self.pairs // self.n_inits

    def group(self, index: int, label: str, n_settings: int, resumed: bool) -> None:
        """A group starts (or, ``resumed``, was found finished on disk)."""
        self.groups_left -= 1
        self.compiling = not resumed

    def advance(self, pairs: int, steps: int, compile_s: float = 0.0) -> None:
        """A chunk of ``pairs`` trained for ``steps`` steps, ``compile_s`` of it compiling."""
        now = time.perf_counter()
        if self.compiling:
            self.compile_s.append(compile_s)
            self.compiling = False
        self.train_s += max(now - self.last - compile_s, 0.0)
        self.last = now
        self.pairs += pairs
        self.init_steps += pairs * steps
        self.init_steps_done += pairs * steps

    def skip(self, pairs: int, steps: int) -> None:
        """A group's ``pairs`` were found finished on disk: counted, but not in the rate."""
        self.pairs += pairs
        self.init_steps_done += pairs * steps
        self.last = time.perf_counter()

    def rate(self) -> float:
        """Initialization-steps per second of training, compile time left out."""
        return self.init_steps / self.train_s if self.train_s > 0 else 0.0

    def eta(self) -> float:
        """Seconds left: training at the measured rate, plus compiling the groups still to come."""
        if self.init_steps == 0 or self.train_s <= 0:
            return math.inf
        compile_each = sum(self.compile_s) / len(self.compile_s) if self.compile_s else 0.0
        training = max(self.total_init_steps - self.init_steps_done, 0) / self.rate()
        return training + compile_each * self.groups_left

    def status(self) -> str:
        state = "compiling, " if self.compiling else ""
        return (
            f"{state}settings {self.settings_done}/{self.n_settings}, "
            f"{si(self.rate())} init-steps/s, ETA {duration(self.eta())}"
        )

    def close(self) -> None:
        """Called once, at the end or on an error."""


class _Bar(Progress):
    """A tqdm bar over initializations; its own ETA is replaced by the compile-aware one."""

    def __init__(self, n_settings, n_inits, n_groups, total_init_steps=None):
        super().__init__(n_settings, n_inits, n_groups, total_init_steps)
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=self.total,
            unit="init",
            unit_scale=True,
            dynamic_ncols=True,
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )

    def group(self, index, label, n_settings, resumed):
        super().group(index, label, n_settings, resumed)
        self.bar.set_description(f"group {index + 1}/{self.n_groups} {label}")
        self.bar.set_postfix_str(self.status())

    def advance(self, pairs, steps, compile_s=0.0):
        super().advance(pairs, steps, compile_s)
        self.bar.update(pairs)
        self.bar.set_postfix_str(self.status())

    def skip(self, pairs, steps):
        super().skip(pairs, steps)
        self.bar.update(pairs)

    def close(self):
        self.bar.close()


class _Lines(Progress):
    """Plain log lines on stderr (not a terminal): one per group, and one per ``every`` s."""

    def __init__(self, n_settings, n_inits, n_groups, total_init_steps=None, every=10.0):
        super().__init__(n_settings, n_inits, n_groups, total_init_steps)
        self.every = every
        self.printed = self.start

    def group(self, index, label, n_settings, resumed):
        super().group(index, label, n_settings, resumed)
        state = "already done, skipped" if resumed else "compiling and running"
        self._print(f"group {index + 1}/{self.n_groups} ({label}, {n_settings} settings) {state}")

    def advance(self, pairs, steps, compile_s=0.0):
        super().advance(pairs, steps, compile_s)
        self._report()

    def skip(self, pairs, steps):
        super().skip(pairs, steps)
        self._report()

    def _report(self) -> None:
        now = time.perf_counter()
        if now - self.printed >= self.every or self.pairs == self.total:
            self.printed = now
            share = f"{100 * self.pairs / self.total:.0f}%"
            self._print(f"{self.pairs}/{self.total} inits ({share}), {self.status()}")

    @staticmethod
    def _print(text):
        print(f"study run: {text}", file=sys.stderr, flush=True)


def make_progress(
    n_settings: int, n_inits: int, n_groups: int, quiet: bool, total_init_steps=None
) -> Progress:
    """The progress display for this output: a bar on a terminal, log lines otherwise.

    ``total_init_steps`` (initializations x steps over the whole run) makes the estimate of the
    time left right when groups train for different numbers of steps.
    """
    kind = Progress if quiet else _Bar if sys.stderr.isatty() else _Lines
    return kind(n_settings, n_inits, n_groups, total_init_steps)


def si(value: float) -> str:
    """``value`` with a k, M or G suffix and two decimals, e.g. ``2.20M``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def duration(seconds: float) -> str:
    """``1m05s``, ``42s``, or ``?`` when not known."""
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
