"""segqc's bundled QC suite. Run it with ``pytest --pyargs segqc.qc_tests --model DIR ...``."""
