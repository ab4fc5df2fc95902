"""segqc: a pytest plugin that gates the release of instance-segmentation models.

The data flows one way through the package: discover QC pairs (:mod:`segqc.pairing`),
predict or load label images (:mod:`segqc.prediction`), measure
(:mod:`segqc.metrics`), judge against limits (:mod:`segqc.thresholds`,
:mod:`segqc.judge`) and write outputs (:mod:`segqc.outputs`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("segqc")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
