"""The QC data on disk: pairing source images with ground truth, reading TIFFs (axes,
channels) and writing files safely."""
