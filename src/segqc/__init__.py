"""segqc: a pytest plugin that gates the release of instance-segmentation models.

The data flows one way, one package per stage:

* :mod:`segqc.data` — pair QC source images with ground truth, read and write TIFFs;
* :mod:`segqc.predict` — predicted label images: a StarDist model, a predictions folder,
  the prediction cache;
* :mod:`segqc.pipeline` — evaluate one image (read, predict, measure);
* :mod:`segqc.metrics` — the metric engine (public API in its ``__init__``);
* :mod:`segqc.checks` — judge against the limits of thresholds.yaml
  (:mod:`segqc.thresholds`): metric limits, loss curves, regression, statistics,
  robustness, leakage, subgroups;
* :mod:`segqc.outputs` and :mod:`segqc.report` — metrics.csv, summary.json, the
  terminal summary and the HTML report.

:mod:`segqc.session` holds one session's state, :mod:`segqc.gate` ends the session,
:mod:`segqc.xdist` carries findings between pytest-xdist workers and the controller,
and :mod:`segqc.plugin` wires it all into pytest.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("segqc")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
