"""Quality Control #1 (ZeroCostDL4Mic): the training and validation loss curves."""
