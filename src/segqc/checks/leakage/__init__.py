"""Leakage: QC images that show the same field of view as training images."""
