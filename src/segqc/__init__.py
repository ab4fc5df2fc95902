"""segqc: a pytest plugin that gates the release of instance-segmentation models.

The data flows one way: discover QC pairs (:mod:`segqc.data.pairing`), predict or load label
images (:mod:`segqc.predict.stardist`, :mod:`segqc.predict.model_folder`, :mod:`segqc.data.axes`,
:mod:`segqc.predict.cache`), measure (:mod:`segqc.metrics`), judge against the limits of
thresholds.yaml (:mod:`segqc.thresholds.schema`, :mod:`segqc.checks.verdict`) and write the outputs
(:mod:`segqc.data.writing`, :mod:`segqc.outputs.summary`, :mod:`segqc.report`). :mod:`segqc.plugin`
wires it into pytest; :mod:`segqc.pipeline.evaluate` holds one run's state. The other checks
follow the same flow: loss curves (``loss_*``), regression against a released model
(``baseline``, ``regression``, ``stats``), and robustness, leakage and subgroups
(``robustness``, ``leakage``, ``subgroups``, ``generalisation``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("segqc")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
