"""segqc: a pytest plugin that gates the release of instance-segmentation models.

The data flows one way: discover QC pairs (:mod:`segqc.pairing`), predict or load label
images (:mod:`segqc.prediction`, :mod:`segqc.model_folder`, :mod:`segqc.axes`,
:mod:`segqc.cache`), measure (:mod:`segqc.metrics`), judge against the limits of
thresholds.yaml (:mod:`segqc.thresholds`, :mod:`segqc.judge`) and write the outputs
(:mod:`segqc.outputs`, :mod:`segqc.summary`, :mod:`segqc.report`). :mod:`segqc.plugin`
wires it into pytest; :mod:`segqc.session` holds one run's state. The other checks
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
