"""Bootstrap intervals over QC images and the statistical gates built on them."""
