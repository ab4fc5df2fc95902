"""The checks: every judgement segqc makes, each as pure functions plus one small plugin.

* :mod:`~segqc.checks.verdict` — the one :class:`~segqc.checks.verdict.Verdict` type.
* :mod:`~segqc.checks.quality` — the metrics table against ``per_image``, ``aggregate``
  and ``image_mean`` limits; :mod:`~segqc.checks.accuracy` — the same at other IoU
  thresholds (``aggregate_at``).
* :mod:`~segqc.checks.loss` — the training and validation loss curves.
* :mod:`~segqc.checks.regression` and :mod:`~segqc.checks.statistics` — comparison with a
  released model, bootstrap intervals and statistical gates.
* :mod:`~segqc.checks.robustness`, :mod:`~segqc.checks.leakage`,
  :mod:`~segqc.checks.subgroups` — perturbed images, QC images seen in training, and
  metrics per object size and image group.
"""
