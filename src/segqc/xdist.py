"""Run the QC suite under pytest-xdist: each image evaluated once, every finding delivered.

Under ``-n N`` (or ``--tx``) each worker is a separate pytest process, possibly on
another machine, with its own :class:`~segqc.session.QcSession`; the controller runs no
test and writes every output. Everything travels through xdist's own execnet channel,
never through files both sides must see, so workers on other hosts work:

* **worker → controller.** What a worker finds during a test phase (image outcomes with
  their prediction and report panels, the baseline model's outcomes, robustness results,
  the leakage report) rides on that phase's test report (:data:`REPORT_ATTRIBUTE`,
  built-in types only, which xdist serialises with the report). The device a worker
  predicted on, and anything found after its last report, go in ``workeroutput``.
* **controller → worker.** The controller gives each worker an execnet channel of its
  own in ``workerinput`` and relays on it every image outcome it stores, so a worker's
  whole-set test (``test_aggregate`` and the like, which need every image) evaluates
  only the images no worker has finished yet. Whole-set tests run last on every worker.

Without xdist none of this is registered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from segqc.checks.leakage.search import Leak, LeakageReport
from segqc.checks.robustness.perturbations import RobustnessResult
from segqc.pipeline.outcome import outcome_from_dict, outcome_to_dict
from segqc.session import ImageFinding, QcSession, Role
from segqc.suite import WHOLE_SET_FIXTURES

if TYPE_CHECKING:
    import execnet

__all__ = [
    "REPORT_ATTRIBUTE",
    "XdistController",
    "XdistWorker",
    "finding_from_message",
    "finding_to_message",
    "role_of",
]

#: The test-report attribute carrying a worker's findings.
REPORT_ATTRIBUTE = "segqc_findings"
_RELAY_KEY = "segqc_relay"
_PANELS_KEY = "segqc_panels"
_DEVICE_KEY = "segqc_device"
_LEFTOVER_KEY = "segqc_findings"


def role_of(config: pytest.Config) -> Role:
    """This process's part: ``worker``, ``controller`` (xdist distributes the tests) or
    ``single``."""
    if hasattr(config, "workerinput"):
        return "worker"
    if config.getoption("dist", "no") != "no" and not config.getoption("collectonly"):
        return "controller"
    return "single"


def plugin_for(config: pytest.Config, session: QcSession) -> object | None:
    """The xdist plugin object of this process (None without xdist)."""
    if session.role == "worker":
        return XdistWorker(config, session)
    if session.role == "controller":
        return XdistController(session)
    return None


# --- messages: findings as built-in types ----------------------------------------------


def _leakage_to_dict(report: LeakageReport) -> dict[str, Any]:
    return {
        "leaks": [
            {"qc": str(x.qc), "training": str(x.training), "score": x.score, "how": x.how}
            for x in report.leaks
        ],
        "closest": {k: list(v) for k, v in report.closest.items()},
        "problems": list(report.problems),
        "n_qc": report.n_qc,
        "n_training": report.n_training,
        "seconds": report.seconds,
        "settings": dict(report.settings),
    }


def _leakage_from_dict(data: Mapping[str, Any]) -> LeakageReport:
    return LeakageReport(
        leaks=tuple(
            Leak(Path(x["qc"]), Path(x["training"]), float(x["score"]), str(x["how"]))
            for x in data["leaks"]
        ),
        closest={k: (str(v[0]), float(v[1])) for k, v in data["closest"].items()},
        problems=tuple(data["problems"]),
        n_qc=int(data["n_qc"]),
        n_training=int(data["n_training"]),
        seconds=float(data["seconds"]),
        settings=dict(data["settings"]),
    )


def finding_to_message(finding: ImageFinding | RobustnessResult | LeakageReport) -> dict[str, Any]:
    """A finding as built-in types only, which execnet serialises (see
    :func:`finding_from_message`)."""
    if isinstance(finding, RobustnessResult):
        return {"kind": "robustness", "result": dataclasses.asdict(finding)}
    if isinstance(finding, LeakageReport):
        return {"kind": "leakage", "report": _leakage_to_dict(finding)}
    return {
        "kind": finding.kind,
        "outcome": outcome_to_dict(finding.outcome),
        "prediction": finding.prediction,
        "panels": None if finding.panels is None else dict(finding.panels),
        "reason": finding.reason,
        "for_test": finding.for_test,
    }


def finding_from_message(
    message: Mapping[str, Any], session: QcSession
) -> ImageFinding | RobustnessResult | LeakageReport:
    """Rebuild a finding sent with :func:`finding_to_message`."""
    kind = message["kind"]
    if kind == "robustness":
        return RobustnessResult(**message["result"])
    if kind == "leakage":
        return _leakage_from_dict(message["report"])
    pairs = {p.name: p for p in session.pairs}
    return ImageFinding(
        kind=kind,
        outcome=outcome_from_dict(message["outcome"], pairs=pairs),
        prediction=message.get("prediction"),
        panels=message.get("panels"),
        reason=str(message.get("reason") or ""),
        for_test=bool(message.get("for_test")),
    )


# --- the worker ------------------------------------------------------------------------


class XdistWorker:
    """A worker's side: findings go out on test reports; relayed outcomes come in.

    Parameters
    ----------
    config : pytest.Config
        The worker's config (its ``workerinput``).
    session : QcSession
        The worker's session.
    """

    def __init__(self, config: pytest.Config, session: QcSession) -> None:
        self.config = config
        self.session = session
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        if workerinput.get(_PANELS_KEY):  # the controller writes a report: draw panels here
            session.enable_panels()
        self.relay: execnet.Channel | None = workerinput.get(_RELAY_KEY)
        if self.relay is not None:
            self.relay.setcallback(self._received)

    def _received(self, data: Any) -> None:
        """Keep an outcome another worker evaluated (runs on execnet's receiving thread)."""
        try:
            pairs = {p.name: p for p in self.session.pairs}
            self.session.receive(outcome_from_dict(data, pairs=pairs))
        except Exception:  # a damaged relay message only costs this worker some work
            return

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Run the tests that need every image's outcome after the per-image tests.

        By then most images are done, here or on other workers (and relayed), so a
        whole-set test evaluates few images itself. Every worker sorts the same
        collection the same way, as xdist requires.
        """

        def needs_whole_set(item: pytest.Item) -> bool:
            names = set(getattr(item, "fixturenames", ()))
            return bool(names & WHOLE_SET_FIXTURES) and "qc_image" not in names

        items.sort(key=needs_whole_set)  # stable: the order is otherwise kept

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Attach what this test phase found to its report."""
        report = yield
        unsent = self.session.take_unsent()
        if unsent:
            setattr(report, REPORT_ATTRIBUTE, [finding_to_message(f) for f in unsent])
        return report

    def pytest_sessionfinish(self) -> None:
        """Hand the controller the device and anything found after the last report."""
        output: dict[str, Any] | None = getattr(self.config, "workeroutput", None)
        if output is None:
            return
        device = getattr(self.session.predictor, "device_name", None)
        if device:
            output[_DEVICE_KEY] = str(device)
        leftover = self.session.take_unsent()
        if leftover:
            output[_LEFTOVER_KEY] = [finding_to_message(f) for f in leftover]


# --- the controller --------------------------------------------------------------------


class XdistController:
    """The controller's side: store what workers find, relay outcomes to the others.

    Parameters
    ----------
    session : QcSession
        The controller's session, which writes the outputs.
    """

    def __init__(self, session: QcSession) -> None:
        self.session = session
        self.channels: dict[str, execnet.Channel] = {}

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Give each worker its relay channel, and whether to draw report panels."""
        channel = node.gateway.newchannel()
        self.channels[node.gateway.id] = channel
        node.workerinput[_RELAY_KEY] = channel
        node.workerinput[_PANELS_KEY] = self.session.panel_plan is not None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Store the findings a worker's report carries and relay the outcomes."""
        messages = getattr(report, REPORT_ATTRIBUTE, None)
        if messages:
            self._accept(messages, sender=getattr(report, "node", None))

    def _accept(self, messages: list[Mapping[str, Any]], sender: Any) -> None:
        session = self.session
        sender_id = getattr(getattr(sender, "gateway", None), "id", None)
        for message in messages:
            finding = finding_from_message(message, session)
            if isinstance(finding, RobustnessResult):
                session.accept_robustness(finding)
            elif isinstance(finding, LeakageReport):
                session.accept_leakage(finding)
            else:
                stored = session.accept(finding)
                if finding.kind == "image":
                    self._relay(outcome_to_dict(stored), exclude=sender_id)

    def _relay(self, data: dict[str, Any], *, exclude: str | None) -> None:
        for worker, channel in self.channels.items():
            if worker == exclude or channel.isclosed():
                continue
            try:
                channel.send(data)
            except (OSError, EOFError, ValueError):
                continue  # the worker is gone; nothing waits for this outcome there

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Keep the device the worker predicted on and its last findings."""
        output = getattr(node, "workeroutput", None) or {}
        device = output.get(_DEVICE_KEY)
        if device:
            self.session.note_device(str(device))
        leftover = output.get(_LEFTOVER_KEY)
        if leftover:
            self._accept(leftover, sender=node)
        channel = self.channels.pop(getattr(node.gateway, "id", ""), None)
        if channel is not None and not channel.isclosed():
            channel.close()

    def pytest_unconfigure(self) -> None:
        """Close the relay channels of workers that never reported down."""
        for channel in self.channels.values():
            if not channel.isclosed():
                channel.close()
        self.channels.clear()
