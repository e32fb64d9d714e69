"""The one reader of a prepared dataset's splits for measurements: the pieces
of a split as records (tokens as written), or as the pipeline's arrays (with
controls and time written as a BatchSpec says). Every measurement in eval/
reads the eval split through here, so they all see the same pieces."""

from __future__ import annotations

from collections.abc import Iterator

import grain
from array_record.python.array_record_data_source import ArrayRecordDataSource

from yoshimidi_jax.data.manifest import shard_paths
from yoshimidi_jax.data.pipeline import BatchSpec, piece_dataset
from yoshimidi_jax.data.records import PieceRecord, deserialize


def split_records(data_dir: str, split: str = "eval") -> Iterator[PieceRecord]:
    """The split's pieces in shard order, as written by experiments.prepare."""
    source = ArrayRecordDataSource(shard_paths(data_dir, split))
    for i in range(len(source)):
        yield deserialize(source[i])


def split_arrays(data_dir: str, spec: BatchSpec, split: str = "eval") -> grain.MapDataset:
    """The split's pieces as the pipeline writes them ({"ids", "times"}: controls
    inserted and dropped, time as TIME or TIME_SHIFT, as `spec` says)."""
    return piece_dataset(shard_paths(data_dir, split), spec)
