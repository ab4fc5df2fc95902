"""Metamorphic robustness tests: perturb a QC image, predict again, compare the metrics."""
