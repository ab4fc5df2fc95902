"""What a QC run leaves behind: the output folder, metrics.csv, summary.json and the
terminal summary (the HTML report is :mod:`segqc.report`)."""
