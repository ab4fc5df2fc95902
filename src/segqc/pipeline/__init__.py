"""The per-image pipeline: read, predict, measure (:func:`~segqc.pipeline.evaluate.evaluate_image`),
and what it found (:class:`~segqc.pipeline.outcome.ImageOutcome`)."""
