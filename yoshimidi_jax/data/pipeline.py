"""Shards -> shuffled, packed, batched training windows, with grain.

    array_record shards
      -> one record per piece; record i belongs to stream i % num_streams
         (a process reads only its own streams)
      -> global shuffle per epoch (seeded), repeat
      -> decode; velocity augmentation (seeded per element, optional);
         control tokens, one per press (sequence, press and attribute dropout);
         the piece's style at every token (dropped per piece); the pitches
         sounding before each token (packed in 4 int32 words)
      -> concat-then-split into windows of seq_len + 1, no padding except at
         the very end of a finite stream, pieces crossing window edges continue
         in the next window (nothing dropped at shard or window boundaries)
      -> inputs/targets shifted by one, segment ids, loss mask, the style of
         each input, and the pitches sounding when the window starts (a window
         may start inside a piece, with notes already sounding)
      -> batch

The returned dataset is a grain IterDataset: `iter()` gives an iterator whose
`get_state()` / `set_state()` resume exactly.

Streams: each stream shuffles, packs and batches its own records, and a
process's batch is its streams' batches one after another. With the number of
streams fixed (config data.streams), the global batch (process 0's rows, then
process 1's, ...) is the same whatever the number of processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import grain
import numpy as np
from array_record.python.array_record_data_source import ArrayRecordDataSource

from yoshimidi_jax.data.augment import augment_velocity
from yoshimidi_jax.data.manifest import shard_paths
from yoshimidi_jax.data.records import deserialize
from yoshimidi_jax.tokens import controls as ctl
from yoshimidi_jax.tokens.encode import decode, encode
from yoshimidi_jax.tokens.sounding import ages_from_slots, sounding_ages
from yoshimidi_jax.tokens.sounding import pack as pack_sounding
from yoshimidi_jax.tokens.sounding import sounding_before
from yoshimidi_jax.tokens.sounding import unpack as unpack_sounding
from yoshimidi_jax.tokens.styles import NO_STYLE
from yoshimidi_jax.tokens.time_shifts import to_time_shifts
from yoshimidi_jax.tokens.vocab import BOS, EOS, Vocab


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    seq_len: int = 256  # model context: inputs and targets are [batch, seq_len]
    batch_size: int = 8  # per process (all its streams together)
    seed: int = 0
    shuffle: bool = True
    num_epochs: int | None = None  # None: repeat forever
    add_controls: bool = True
    p_drop_control_sequence: float = 0.1  # a whole piece gets no CONTROL token (the unconditional mode)
    p_drop_control_press: float = 0.1  # a press gets no CONTROL token
    p_drop_control_attribute: float = 0.15  # one attribute of a CONTROL is ANY
    p_drop_style: float = 0.2  # a piece's style is not given (tokens/styles.py: the unconditioned mode)
    augment_velocity: bool = False  # per-piece gain/offset and swells (data/augment.py)
    drop_remainder: bool = True
    # a piece longer than this gives, each epoch, a random crop of this many
    # tokens (None: every token): the model then learns the mix of pieces,
    # not the mix of tokens, in which a few long pieces weigh as many short ones
    max_piece_tokens: int | None = None
    # the vocabulary the batches are written in: with time_shifts > 0, time as
    # TIME_SHIFT tokens (tokens/time_shifts.py) instead of the records' TIME positions
    vocab: Vocab = Vocab()
    # how a stream reads ahead (grain.ReadOptions), which never changes a batch:
    # threads making pieces, and pieces made ahead of the packer. Grain's own
    # defaults (16 threads, 500 pieces) suit slow remote reads; here a piece is
    # numpy work on local records, and 500 pieces ahead per stream (train and
    # eval) held the GIL and the cores for most of a short CPU run
    read_threads: int = 2
    prefetch_pieces: int = 32


@dataclasses.dataclass(frozen=True)
class _PieceToArrays(grain.transforms.RandomMap):
    """Record bytes -> {"ids", "times"} with control tokens inserted (and
    time as TIME_SHIFT tokens where the spec says so)."""

    spec: BatchSpec
    vocab: Vocab = Vocab()  # what the records are written in

    def random_map(self, data: bytes, rng: np.random.Generator) -> dict[str, np.ndarray]:
        record = deserialize(data)
        tokens = record.tokens
        ids, times = tokens.ids, tokens.times
        if self.spec.augment_velocity:
            events = augment_velocity(decode(ids, times, self.vocab), rng)
            tokens = encode(events, self.vocab, add_bos_eos=False)
            # keep the stored BOS/EOS framing as it was
            head = ids[:1] if ids.size and ids[0] == BOS else ids[:0]
            tail = ids[-1:] if ids.size and ids[-1] == EOS else ids[:0]
            ids = np.concatenate([head, tokens.ids, tail]).astype(np.int32)
            times = np.concatenate([np.zeros(head.size), tokens.times, np.zeros(tail.size)]).astype(np.float32)
        if self.spec.add_controls:
            controls = ctl.annotate(ids, times, self.vocab)
            controls, keep = ctl.drop_controls(
                controls, rng, self.spec.p_drop_control_sequence, self.spec.p_drop_control_press,
                self.spec.p_drop_control_attribute,
            )
            ids, times = ctl.insert_controls(ids, times, controls, keep, self.vocab)
        if self.spec.vocab.time_shifts:
            ids, times = to_time_shifts(ids, times, self.spec.vocab)
        style = NO_STYLE if rng.random() < self.spec.p_drop_style else record.style
        ids, times = crop_piece(ids.astype(np.int32), times.astype(np.float32), self.spec.max_piece_tokens, rng,
                                self.spec.vocab)
        return {"ids": ids, "times": times,
                "style": np.full(ids.shape, style, np.int32),
                "sounding": pack_sounding(sounding_before(ids, self.spec.vocab)),
                "age": sounding_ages(ids, times, self.spec.vocab)}


def crop_piece(ids: np.ndarray, times: np.ndarray, max_tokens: int | None, rng: np.random.Generator,
               vocab: Vocab = Vocab()) -> tuple[np.ndarray, np.ndarray]:
    """A piece's tokens cut to `max_tokens` consecutive tokens at a random
    start where it is longer (None: whole), less the NOTE_OFFs of notes that
    began before the cut: a crop starts with nothing sounding, as a piece
    does. (Packed after other pieces, a crop mostly begins inside a window,
    where the model's features start a segment silent; only a window's first
    token is told what sounds, `sounding_start`.) The notes sounding across
    the cut are left out of the crop, not held."""
    n = ids.shape[0]
    if max_tokens is None or n <= max_tokens:
        return ids, times
    start = int(rng.integers(n - max_tokens + 1))
    ids, times = ids[start:start + max_tokens], times[start:start + max_tokens]
    carried = sounding_before(ids, vocab)  # [n, pitches]: what sounds before each token, in the crop alone
    is_off = vocab.is_note_off(ids)
    pitch = np.where(is_off, ids - vocab.note_off, 0)
    # a NOTE_OFF whose pitch does not sound before it (in the crop alone) ends a note of before the cut
    orphan = is_off & ~carried[np.arange(len(ids)), pitch]
    return ids[~orphan], times[~orphan]


def _to_example(window: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A packed window of seq_len + 1 -> shifted inputs/targets and masks."""
    ids, times = window["ids"], window["times"]
    seg = window["ids_segment_ids"]
    return {
        "inputs": ids[:-1],
        "input_times": times[:-1],
        "styles": window["style"][:-1],
        "sounding_start": unpack_sounding(window["sounding"][0]),
        "age_start": ages_from_slots(unpack_sounding(window["sounding"][0]), window["age"][0]),
        "targets": ids[1:],
        "target_times": times[1:],
        "segment_ids": seg[:-1],
        "positions": window["ids_positions"][:-1],
        # a target counts if it is real and from the same piece as its input
        "loss_mask": (seg[1:] != 0) & (seg[1:] == seg[:-1]),
    }


PIECE_FEATURES = ("ids", "times", "style", "sounding", "age")  # per token, as _PieceToArrays writes them
STREAM_SEED_STRIDE = 1_000_003  # stream s draws its shuffle and dropout from seed + s * this


def piece_dataset(
    paths: Sequence[str], spec: BatchSpec, stream: int = 0, num_streams: int = 1
) -> grain.MapDataset:
    """The records of one stream (every num_streams-th, from `stream`),
    shuffled and repeated, as arrays."""
    if not paths:
        raise ValueError("no shards to read: the split is empty (see manifest.json)")
    source = grain.MapDataset.source(ArrayRecordDataSource(list(paths)))
    # seeded before slicing, as single-process runs always were (their batches are unchanged)
    ds = source.seed(spec.seed + STREAM_SEED_STRIDE * stream)[stream::num_streams]
    if spec.shuffle:
        ds = ds.shuffle()
    if spec.num_epochs != 1:
        ds = ds.repeat(spec.num_epochs)
    return ds.random_map(_PieceToArrays(spec))


def stream_batches(paths: Sequence[str], spec: BatchSpec, rows: int, stream: int = 0,
                   num_streams: int = 1) -> grain.IterDataset:
    """One stream's records, packed into windows, `rows` windows a batch."""
    ds = piece_dataset(paths, spec, stream, num_streams).to_iter_dataset(
        grain.ReadOptions(num_threads=spec.read_threads, prefetch_buffer_size=spec.prefetch_pieces))
    length = spec.seq_len + 1
    ds = grain.experimental.ConcatThenSplitIterDataset(
        ds, length_struct=dict.fromkeys(PIECE_FEATURES, length), split_full_length_features=True
    )
    ds = ds.map(_to_example)
    return ds.batch(rows, drop_remainder=spec.drop_remainder)


def streams_of(process_index: int, streams_per_process: int) -> list[int]:
    """The streams a process reads: the next streams_per_process after those of the processes before it."""
    return [process_index * streams_per_process + j for j in range(streams_per_process)]


def _concat_rows(parts: tuple[dict[str, np.ndarray], ...]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def batches_from_paths(
    paths: Sequence[str], spec: BatchSpec, process_index: int = 0, process_count: int = 1,
    streams_per_process: int = 1,
) -> grain.IterDataset:
    """This process's batches: its streams (process_index * k .. + k - 1 of
    process_count * k, k = streams_per_process), spec.batch_size // k rows each."""
    k = streams_per_process
    if k < 1 or spec.batch_size % k:
        raise ValueError(f"a batch of {spec.batch_size} rows does not split into {k} streams")
    parts = [stream_batches(paths, spec, spec.batch_size // k, stream, process_count * k)
             for stream in streams_of(process_index, k)]
    if k == 1:
        return parts[0]
    return grain.experimental.ZipIterDataset(parts).map(_concat_rows)


def make_batches(
    data_dir: str, split: str, spec: BatchSpec, process_index: int = 0, process_count: int = 1,
    streams_per_process: int = 1,
) -> grain.IterDataset:
    """Batches of one split of a prepared dataset (see experiments.prepare).
    Same spec, seed and number of streams -> the same global batches, on any
    machine and any number of processes."""
    return batches_from_paths(shard_paths(data_dir, split), spec, process_index, process_count, streams_per_process)
