"""Run the QC suite under pytest-xdist: each image evaluated once, every outcome reported.

Under ``-n N`` each worker is a separate pytest process with its own
:class:`~segqc.session.QcRun`, and the controller, which writes metrics.csv and
summary.json, runs no test. So:

* a worker evaluates an image only when one of its tests needs it (:class:`LazyOutcomes`);
* a worker writes every outcome it evaluates to a *spool* folder the controller shares
  with all workers, and reads it there before evaluating, so aggregate tests reuse what
  other workers already did and compute only what is missing (:class:`SharedEvaluator`);
* each outcome a worker evaluated is announced to the controller on the report of the
  test that evaluated it (``report.segqc_outcomes``, plain dicts: xdist serialises
  report attributes), and the controller's run records it (:class:`XdistBridge`). The
  announcement names the spool entry the controller reads it from
  (``{"spooled": name}``), or, when the spool could not be written, carries the whole
  outcome; an outcome with its per-object table is ~75 kB, which execnet takes ~3 ms
  to serialise and ~3 ms to read back per image, where the spool's JSON takes ~1 ms.

Without xdist none of this runs: the bridge is inert and the session fixture evaluates
every image up front, as before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Generator, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from segqc.judge import Verdict
from segqc.metrics.matching import MatchingStats
from segqc.metrics.object_matches import ObjectMatches
from segqc.metrics.scores import QcScores
from segqc.outputs import OutputError, atomic_write_text
from segqc.pairing import QcPair
from segqc.session import ImageOutcome, QcRun

__all__ = [
    "LazyOutcomes",
    "SharedEvaluator",
    "XdistBridge",
    "from_worker",
    "is_xdist_worker",
    "outcome_from_dict",
    "outcome_to_dict",
    "portable_outcome",
    "received_outcome",
    "send_to_controller",
    "spooled_outcome",
]

_SPOOL_KEY = "segqc_spool"
_VISUALS_KEY = "segqc_visuals"
_DEVICE_KEY = "segqc_device"
REPORT_ATTRIBUTE = "segqc_outcomes"


def is_xdist_worker(config: pytest.Config) -> bool:
    """True in a pytest-xdist worker process."""
    return hasattr(config, "workerinput")


def outcome_to_dict(outcome: ImageOutcome) -> dict[str, Any]:
    """An :class:`ImageOutcome` as plain JSON-able data (see :func:`outcome_from_dict`)."""
    pair = outcome.pair
    scores = outcome.scores
    return {
        "pair": {
            "name": pair.name,
            "source": str(pair.source) if pair.source else None,
            "target": str(pair.target),
        },
        "scores": None if scores is None else scores.to_dict(),
        "error": outcome.error,
        "prediction_file": str(outcome.prediction_file) if outcome.prediction_file else None,
        "n_tiles": list(outcome.n_tiles) if outcome.n_tiles is not None else None,
        "seconds": outcome.seconds,
        "verdicts": [asdict(v) for v in outcome.verdicts],
        "cached": outcome.cached,
        "objects": None if outcome.objects is None else outcome.objects.to_dict(),
        "curve": None if outcome.curve is None else [asdict(s) for s in outcome.curve],
        "visual_file": str(outcome.visual_file) if outcome.visual_file else None,
    }


def send_to_controller(config: pytest.Config, key: str, value: Any) -> None:
    """xdist worker: hand ``value`` to the controller (a no-op outside a worker).

    It goes in ``config.workeroutput``, which xdist sends once every
    ``pytest_sessionfinish`` has run; the controller reads it with :func:`from_worker`
    in ``pytest_testnodedown``. Sent through JSON, so that no numpy scalar reaches
    execnet, which serialises built-in types only.
    """
    output = getattr(config, "workeroutput", None)
    if output is not None:
        output[key] = json.loads(json.dumps(value))


def from_worker(node: Any, key: str, default: Any = None) -> Any:
    """xdist controller: what a worker sent with :func:`send_to_controller`."""
    return (getattr(node, "workeroutput", None) or {}).get(key, default)


def portable_outcome(outcome: ImageOutcome) -> dict[str, Any]:
    """An outcome's scores, verdicts and paths, for :func:`send_to_controller`.

    Without the per-object matches and the accuracy curve: the controller compares
    scores only.
    """
    return {**outcome_to_dict(outcome), "objects": None, "curve": None}


def outcome_from_dict(
    data: Mapping[str, Any], *, pairs: Mapping[str, QcPair] | None = None
) -> ImageOutcome:
    """Rebuild an :class:`ImageOutcome`; ``pairs`` supplies the receiver's own QcPair."""
    raw_pair = data["pair"]
    pair = (pairs or {}).get(raw_pair["name"]) or QcPair(
        raw_pair["name"],
        Path(raw_pair["source"]) if raw_pair["source"] else None,
        Path(raw_pair["target"]),
    )
    scores = None if data["scores"] is None else QcScores.from_dict(data["scores"])
    return ImageOutcome(
        pair=pair,
        scores=scores,
        error=data["error"],
        prediction_file=Path(data["prediction_file"]) if data["prediction_file"] else None,
        n_tiles=tuple(data["n_tiles"]) if data["n_tiles"] is not None else None,
        seconds=float(data["seconds"]),
        verdicts=[Verdict(**v) for v in data["verdicts"]],
        cached=bool(data["cached"]),
        objects=ObjectMatches.from_dict(data["objects"]) if data.get("objects") else None,
        curve=tuple(MatchingStats(**s) for s in data["curve"]) if data.get("curve") else None,
        visual_file=Path(data["visual_file"]) if data.get("visual_file") else None,
    )


class SharedEvaluator:
    """Evaluate images of a worker's run, sharing results through a spool folder.

    Parameters
    ----------
    run : QcRun
        The worker's run; outcomes are recorded into it.
    spool : Path or None
        Folder shared by all workers of the session (None: no sharing).
    """

    def __init__(self, run: QcRun, spool: Path | None) -> None:
        self.run = run
        self.spool = spool
        self.unsent: list[dict[str, Any]] = []
        self._pairs = {p.name: p for p in run.pairs}

    def evaluate(self, pair: QcPair) -> ImageOutcome:
        """The outcome of ``pair``: already here, in the spool, or evaluated now."""
        known = self.run.outcome_of(pair.name)
        if known is not None:
            return known
        spooled = self._from_spool(pair)
        if spooled is not None:
            self.run.record(spooled)
            return spooled
        outcome = self.run.evaluate(pair)
        if self.spool is not None:
            try:
                text = json.dumps(outcome_to_dict(outcome))
                atomic_write_text(_spool_path(self.spool, pair.name), text, durable=False)
            except OutputError:
                pass  # sharing only saves work: the report then carries the outcome
            else:
                self.unsent.append({"spooled": pair.name})
                return outcome
        self.unsent.append(outcome_to_dict(outcome))
        return outcome

    def evaluate_all(self) -> None:
        """Make sure every pair has an outcome (aggregate tests need them all)."""
        for pair in self.run.pending():
            self.evaluate(pair)

    def _from_spool(self, pair: QcPair) -> ImageOutcome | None:
        return spooled_outcome(self.spool, pair.name, self._pairs)

    def take_unsent(self) -> list[dict[str, Any]]:
        """Announcements of the outcomes evaluated here and not yet attached to a report.

        Each is ``{"spooled": name}`` or, when the spool could not be written, the whole
        outcome as :func:`outcome_to_dict` gives it; :func:`received_outcome` reads both.
        """
        sent, self.unsent = self.unsent, []
        return sent


def _spool_path(spool: Path, name: str) -> Path:
    return spool / f"{hashlib.sha256(name.encode()).hexdigest()}.json"


def spooled_outcome(
    spool: Path | None, name: str, pairs: Mapping[str, QcPair]
) -> ImageOutcome | None:
    """The outcome of image ``name`` in the ``spool`` folder (None: absent or damaged)."""
    if spool is None:
        return None
    try:
        text = _spool_path(spool, name).read_text("utf-8")
        return outcome_from_dict(json.loads(text), pairs=pairs)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, half-visible or damaged


def received_outcome(
    message: Mapping[str, Any], spool: Path | None, pairs: Mapping[str, QcPair]
) -> ImageOutcome | None:
    """The outcome a worker announced (:meth:`SharedEvaluator.take_unsent`).

    None when it names a spool entry that can no longer be read; the image then counts
    as not evaluated.
    """
    if "spooled" in message:
        return spooled_outcome(spool, str(message["spooled"]), pairs)
    return outcome_from_dict(message, pairs=pairs)


class LazyOutcomes(Mapping[str, ImageOutcome]):
    """``qc_outcomes`` on an xdist worker: an image is evaluated when first looked up."""

    def __init__(self, evaluator: SharedEvaluator) -> None:
        self.evaluator = evaluator
        self._pairs = {p.name: p for p in evaluator.run.pairs}

    def __getitem__(self, name: str) -> ImageOutcome:
        return self.evaluator.evaluate(self._pairs[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def evaluate_all(self) -> None:
        """Evaluate (or fetch from the spool) every image."""
        self.evaluator.evaluate_all()


class XdistBridge:
    """Hooks that carry worker outcomes to the controller's :class:`QcRun`.

    Registered for every configured QC run; without xdist it does nothing.
    """

    def __init__(self, config: pytest.Config, run: QcRun, output_dir: Path) -> None:
        self.config = config
        self.run = run
        self.output_dir = output_dir
        self.spool: Path | None = None
        workerinput = getattr(config, "workerinput", None)
        self.evaluator: SharedEvaluator | None = None
        if workerinput is not None:
            spool = workerinput.get(_SPOOL_KEY)
            self.evaluator = SharedEvaluator(run, Path(spool) if spool else None)
            visuals = workerinput.get(_VISUALS_KEY)
            if visuals:  # the controller writes a report: draw each image where evaluated
                run.visuals_dir = Path(visuals)
        self._pairs = {p.name: p for p in run.pairs}

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Controller: give each worker the spool and report-visuals folders of this session."""
        if self.run.visuals_dir is not None:
            node.workerinput[_VISUALS_KEY] = str(self.run.visuals_dir)
        if self.spool is None:
            try:
                self.output_dir.mkdir(parents=True, exist_ok=True)
                self.spool = Path(tempfile.mkdtemp(prefix=".segqc-spool-", dir=self.output_dir))
            except OSError:
                return  # workers then evaluate without sharing
        node.workerinput[_SPOOL_KEY] = str(self.spool)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Worker: attach the outcomes evaluated during this test phase to its report."""
        report = yield
        if self.evaluator is not None and self.evaluator.unsent:
            setattr(report, REPORT_ATTRIBUTE, self.evaluator.take_unsent())
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Controller: record the outcomes a worker's report carries."""
        if self.evaluator is not None:
            return
        for message in getattr(report, REPORT_ATTRIBUTE, None) or ():
            outcome = received_outcome(message, self.spool, self._pairs)
            if outcome is not None:
                self.run.record(outcome)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Controller: keep the device a worker's model predicted on.

        Only workers load the model, so without this summary.json and the report
        would say that no device predicted.
        """
        device = from_worker(node, _DEVICE_KEY)
        # the StarDistPredictor itself, also when a CachingPredictor wraps it
        predictor: Any = getattr(self.run.predictor, "inner", self.run.predictor)
        if device and getattr(predictor, "device_name", "") is None:
            predictor.device_name = str(device)

    def pytest_sessionfinish(self) -> None:
        """Worker: hand the prediction device to the controller. Controller: remove the
        spool folder."""
        if self.evaluator is not None:
            device = getattr(self.run.predictor, "device_name", None)
            if device:
                send_to_controller(self.config, _DEVICE_KEY, device)
            return
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)
            self.spool = None
