"""The ``segqc`` command: run the bundled QC suite, with options written as users type them.

``segqc --model DIR --qc-source SRC --qc-target GT [any pytest option]`` is
``pytest --pyargs segqc.qc_tests --model=DIR --qc-source=SRC --qc-target=GT ...``: segqc's
path options are joined to their values (:func:`segqc.invocation.joined_path_options`),
so pytest chooses the rootdir, the ini file and thresholds.yaml from the folder the
command is run in, whatever the paths (see :mod:`segqc.invocation`). The exit code is
pytest's: 0 passed, 1 a QC test failed, 4 a usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bundled QC suite; ``argv`` defaults to the command line."""
    import pytest

    from segqc.invocation import joined_path_options

    args = list(sys.argv[1:] if argv is None else argv)
    # This command imported segqc before pytest starts, so pytest cannot rewrite the
    # asserts of segqc's own modules (its tests, the QC suite, are rewritten as usual).
    quiet = "ignore:Module already imported so cannot be rewritten; segqc"
    return int(pytest.main(["-W", quiet, "--pyargs", "segqc.qc_tests", *joined_path_options(args)]))


if __name__ == "__main__":  # python -m segqc.cli
    sys.exit(main())
