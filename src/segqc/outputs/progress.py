"""Progress output while images are predicted: a bar on a terminal, lines in CI logs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from segqc.pipeline.outcome import ImageOutcome

__all__ = ["image_progress"]


@contextmanager
def image_progress(
    config: pytest.Config, *, total: int, what: str
) -> Iterator[Callable[[ImageOutcome, int, int], None]]:
    """Yield a callback reporting each evaluated image, with pytest's capture suspended.

    On an interactive terminal a tqdm bar is drawn on stderr; otherwise (CI logs) one line
    per image is written, so a long run still shows it is alive.
    """
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    quiet = config.get_verbosity() < -1 or reporter is None
    with capture.global_and_fixture_disabled() if capture else _nothing():
        if quiet:
            yield lambda outcome, done, total_: None
            return
        if sys.stderr.isatty():
            from tqdm import tqdm

            with tqdm(total=total, desc=f"segqc: {what}", unit="image", file=sys.stderr) as bar:

                def advance(outcome: ImageOutcome, done: int, total_: int) -> None:
                    bar.set_postfix_str(outcome.pair.name, refresh=False)
                    bar.update(1)

                yield advance
            return
        reporter.write_line(f"segqc: {what} ({total} images)")

        def log(outcome: ImageOutcome, done: int, total_: int) -> None:
            state = f"error: {outcome.error}" if outcome.error else f"{outcome.seconds:.1f} s"
            reporter.write_line(f"segqc: [{done}/{total_}] {outcome.pair.name} {state}")

        yield log


@contextmanager
def _nothing() -> Iterator[None]:
    yield
