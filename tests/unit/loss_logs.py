"""Write training histories as ZeroCostDL4Mic and Keras/StarDist do, for the tests.

TensorBoard event files are written with tensorboard's record writer and protocol
buffers (its EventFileWriter would import TensorFlow): ``epoch_loss`` as a rank-0 float
tensor with the ``scalars`` plugin, as Keras' TensorBoard callback writes it, or as a
TF1-style ``simple_value``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def write_csv(path: Path, columns: dict[str, Sequence[float]], *, header=None) -> Path:
    """A CSV with one row per epoch; ``header`` overrides the written column names."""
    names = list(columns)
    rows = zip(*columns.values(), strict=True)
    lines = [",".join(header or names)] + [",".join(repr(float(v)) for v in row) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_events(
    folder: Path,
    scalars: dict[str, Sequence[float]],
    *,
    first_step: int = 0,
    simple_value: bool = False,
    name: str = "events.out.tfevents.1",
) -> Path:
    """One event file in ``folder`` with each tag's values at steps first_step, +1, ..."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    from tensorboard.util import tensor_util

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with path.open("wb") as handle:
        writer = RecordWriter(handle)  # TFRecord framing with CRCs; no TensorFlow needed
        writer.write(
            event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString()
        )
        for tag, values in scalars.items():
            for offset, value in enumerate(values):
                if simple_value:
                    summary_value = summary_pb2.Summary.Value(tag=tag, simple_value=value)
                else:
                    metadata = summary_pb2.SummaryMetadata(
                        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
                    )
                    summary_value = summary_pb2.Summary.Value(
                        tag=tag, tensor=tensor_util.make_tensor_proto(value), metadata=metadata
                    )
                event = event_pb2.Event(
                    step=first_step + offset,
                    wall_time=1.0,
                    summary=summary_pb2.Summary(value=[summary_value]),
                )
                writer.write(event.SerializeToString())
    return path
