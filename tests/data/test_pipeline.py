"""grain batches: deterministic, resumable, sharded, nothing lost at boundaries."""

from __future__ import annotations

import time

import numpy as np
import pytest

from yoshimidi_jax.data.pipeline import BatchSpec, _PieceToArrays, make_batches
from yoshimidi_jax.data.prepare import PrepareOptions, prepare
from yoshimidi_jax.data.sources.base import SourceFiles
from yoshimidi_jax.tokens import BOS, EOS, PAD, TIME, Vocab

VOCAB = Vocab()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, few_midi_files) -> str:
    out = str(tmp_path_factory.mktemp("ds") / "few")
    # small shards, so that pieces cross shard boundaries
    prepare(SourceFiles(paths=tuple(few_midi_files)), out,
            PrepareOptions(workers=1, progress=False, eval_fraction=0.0, records_per_shard=2))
    return out


def _take(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


def _equal(a, b):
    return all(np.array_equal(a[k], b[k]) for k in a)


def test_shapes_and_masks(dataset):
    spec = BatchSpec(seq_len=128, batch_size=4, seed=0)
    batch = _take(make_batches(dataset, "train", spec), 1)[0]
    for key in ("inputs", "targets", "input_times", "target_times", "segment_ids", "positions", "loss_mask"):
        assert batch[key].shape == (4, 128), key
    np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
    assert batch["inputs"].max() < VOCAB.size
    # a BOS target never counts (it would be predicted across a piece boundary)
    assert not batch["loss_mask"][batch["targets"] == BOS].any()
    assert (batch["segment_ids"] > 0).all()  # packed: no padding while data lasts


def test_same_seed_same_batches_other_seed_other_batches(dataset):
    a = _take(make_batches(dataset, "train", BatchSpec(seq_len=64, batch_size=2, seed=3)), 6)
    b = _take(make_batches(dataset, "train", BatchSpec(seq_len=64, batch_size=2, seed=3)), 6)
    c = _take(make_batches(dataset, "train", BatchSpec(seq_len=64, batch_size=2, seed=4)), 6)
    assert all(_equal(x, y) for x, y in zip(a, b))
    assert not all(_equal(x, y) for x, y in zip(a, c))


def test_state_restores_exactly(dataset):
    ds = make_batches(dataset, "train", BatchSpec(seq_len=64, batch_size=2, seed=1))
    it = iter(ds)
    for _ in range(7):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(20)]  # crosses epochs: 5 pieces are ~100 windows? no: a few
    resumed = iter(ds)
    resumed.set_state(state)
    got = [next(resumed) for _ in range(20)]
    assert all(_equal(x, y) for x, y in zip(expected, got))


def test_how_a_stream_reads_ahead_never_changes_a_batch(dataset):
    """Reading in the training thread, the default read-ahead and grain's own
    (16 threads, 500 pieces ahead) give the same batches, and a state saved
    under one restores under another (a resumed run may read ahead otherwise)."""
    specs = [BatchSpec(seq_len=64, batch_size=2, seed=3, read_threads=t, prefetch_pieces=p)
             for t, p in ((0, 0), (BatchSpec.read_threads, BatchSpec.prefetch_pieces), (16, 500))]
    runs = [_take(make_batches(dataset, "train", s), 8) for s in specs]
    for run in runs[1:]:
        assert all(_equal(x, y) for x, y in zip(runs[0], run))
    it = iter(make_batches(dataset, "train", specs[2]))
    for _ in range(3):
        next(it)
    other = iter(make_batches(dataset, "train", specs[0]))
    other.set_state(it.get_state())
    assert _equal(next(other), runs[0][3])


def test_a_stream_makes_few_pieces_ahead_of_its_batches(dataset, monkeypatch):
    """With the default read-ahead, a stream idle after one batch has made at
    most that batch's pieces, the pieces ahead and one a thread. (Grain's own
    default makes 500 ahead on 16 threads: a short CPU run's train and eval
    streams spent most of its cores and its GIL on pieces it never used.)"""
    made = []
    make = _PieceToArrays.random_map
    monkeypatch.setattr(_PieceToArrays, "random_map", lambda self, data, rng: (made.append(1), make(self, data, rng))[1])
    spec = BatchSpec(seq_len=64, batch_size=2, seed=0)
    it = iter(make_batches(dataset, "train", spec))
    next(it)
    time.sleep(1.0)  # time for the threads to fill what they may
    assert 1 <= len(made) <= spec.batch_size + spec.prefetch_pieces + spec.read_threads, len(made)


def test_one_epoch_keeps_every_token(dataset):
    """Concatenating the windows of one epoch gives back every piece whole:
    no padding or dropping at shard or window boundaries."""
    spec = BatchSpec(seq_len=100, batch_size=1, seed=0, shuffle=False, num_epochs=1,
                     add_controls=False, drop_remainder=False)
    windows = list(make_batches(dataset, "train", spec))
    # windows are seq_len + 1 long, split without overlap: rebuild the stream
    stream = np.concatenate([np.append(w["inputs"][0], w["targets"][0, -1]) for w in windows])
    seg = np.concatenate([np.append(w["segment_ids"][0], -1) for w in windows])
    stream = stream[stream != PAD] if (seg[-1] == -1) else stream
    from yoshimidi_jax.data.manifest import read_manifest

    assert (stream == BOS).sum() == 5 and (stream == EOS).sum() == 5
    assert stream.shape[0] == read_manifest(dataset)["tokens"]
    assert sum(w["loss_mask"].sum() for w in windows) >= stream.shape[0] - 5 - len(windows)


def test_processes_get_disjoint_shares(dataset):
    spec = BatchSpec(seq_len=10_000, batch_size=1, seed=0, shuffle=False, num_epochs=1,
                     add_controls=False, drop_remainder=False)
    shares = []
    for process in range(2):
        ds = make_batches(dataset, "train", spec, process_index=process, process_count=2)
        stream = np.concatenate([w["inputs"][0] for w in ds])
        starts = np.flatnonzero(stream == BOS)
        shares.append({tuple(stream[s : s + 40]) for s in starts})  # a piece's opening
    assert len(shares[0]) == 3 and len(shares[1]) == 2  # records 0, 2, 4 and 1, 3
    assert not shares[0] & shares[1]


def test_global_batch_does_not_depend_on_the_number_of_processes(dataset):
    """Two streams: one process reading both gives the same global batches as
    two processes reading one each, row for row; the two halves differ."""
    spec = BatchSpec(seq_len=64, batch_size=4, seed=5)
    one = _take(make_batches(dataset, "train", spec, streams_per_process=2), 3)
    half = BatchSpec(seq_len=64, batch_size=2, seed=5)
    two = [_take(make_batches(dataset, "train", half, process_index=p, process_count=2), 3) for p in range(2)]
    for step in range(3):
        for key in one[step]:
            np.testing.assert_array_equal(one[step][key], np.concatenate([two[0][step][key], two[1][step][key]]))
    assert not np.array_equal(two[0][0]["inputs"], two[1][0]["inputs"])
    with pytest.raises(ValueError, match="does not split into 3 streams"):
        make_batches(dataset, "train", spec, streams_per_process=3)


def _press_starts(ids: np.ndarray) -> int:
    """NOTE_ONs with no NOTE_ON since the last TIME (or row start): one per press."""
    n = 0
    for row in ids:
        open_press = False
        for t in row:
            if t == TIME:
                open_press = False
            elif VOCAB.is_note_on(t):
                n += not open_press
                open_press = True
    return n


def test_controls_are_inserted_and_dropped_at_the_given_rate(dataset):
    # one CONTROL per press, half of them dropped
    spec = BatchSpec(seq_len=512, batch_size=4, seed=0, p_drop_control_sequence=0.0, p_drop_control_press=0.5,
                     p_drop_control_attribute=0.0)
    batch = _take(make_batches(dataset, "train", spec), 1)[0]
    ids = batch["inputs"]
    n_press = _press_starts(ids)
    n_ctrl = VOCAB.is_control(ids).sum()
    assert n_press > 100
    assert 0.35 < n_ctrl / n_press < 0.65
    # nothing dropped: exactly one per press (a window may cut one CONTROL from its press)
    spec = BatchSpec(seq_len=512, batch_size=4, seed=0, p_drop_control_sequence=0.0, p_drop_control_press=0.0,
                     p_drop_control_attribute=0.0)
    ids = _take(make_batches(dataset, "train", spec), 1)[0]["inputs"]
    assert abs(VOCAB.is_control(ids).sum() - _press_starts(ids)) <= ids.shape[0]
    # a whole sequence dropped: none at all
    spec = BatchSpec(seq_len=512, batch_size=4, seed=0, p_drop_control_sequence=1.0)
    ids = _take(make_batches(dataset, "train", spec), 1)[0]["inputs"]
    assert not VOCAB.is_control(ids).any()


def test_the_pitches_sounding_when_a_window_starts_are_the_trackers(dataset):
    """A window that starts inside a piece gets the pitches sounding there: the
    same set the sampler's Track holds after the piece's tokens before it."""
    from yoshimidi_jax.sample.tracker import track_tokens
    from yoshimidi_jax.data.pipeline import piece_dataset
    from yoshimidi_jax.data.manifest import shard_paths

    spec = BatchSpec(seq_len=64, batch_size=1, seed=5, shuffle=False, num_epochs=1)
    piece = piece_dataset(shard_paths(dataset, "train"), spec)[0]
    batches = _take(make_batches(dataset, "train", spec), 6)
    ids = piece["ids"]
    checked = 0
    for w, batch in enumerate(batches):
        first = w * 65  # windows of one unshuffled piece, end to end (64 inputs + the last target)
        if first >= len(ids) - 1 or batch["segment_ids"][0, 0] != 1:
            break
        np.testing.assert_array_equal(batch["inputs"][0], ids[first:first + 64])
        track = track_tokens(ids[None, :first], piece["times"][None, :first]) if first else None
        want = np.asarray(track.sounding)[0] if first else np.zeros(128, bool)
        np.testing.assert_array_equal(batch["sounding_start"][0], want)
        want_age = np.asarray(track.position_start.age)[0] if first else np.zeros(128, np.float32)
        np.testing.assert_allclose(batch["age_start"][0], want_age, atol=1e-4)  # and how long each has sounded
        checked += want.any() and want_age.max() > 0
    assert checked >= 3  # windows that started with notes sounding were seen


def test_styles_are_given_dropped_and_kept_per_piece(tmp_path, few_midi_files):
    """Each piece's style comes from its folder; p_drop_style drops it per piece."""
    import os
    import shutil

    from yoshimidi_jax.tokens.styles import NO_STYLE, STYLES

    root = tmp_path / "src"
    for i, path in enumerate(few_midi_files):
        folder = root / ("bach" if i % 2 == 0 else "ryansMammoth")  # corpus collections -> chorale, fiddle
        os.makedirs(folder, exist_ok=True)
        shutil.copy(path, folder / os.path.basename(path))
    from yoshimidi_jax.data.sources.folder import list_midi_files

    out = str(tmp_path / "styled")
    manifest = prepare(list_midi_files(str(root)), out, PrepareOptions(workers=1, progress=False, eval_fraction=0.0))
    assert manifest["split"]["train"]["styles"] == {"chorale": 3, "fiddle": 2}
    seen = set()
    for p_drop, want_none in ((0.0, False), (1.0, True)):
        spec = BatchSpec(seq_len=64, batch_size=4, seed=0, p_drop_style=p_drop)
        for batch in _take(make_batches(out, "train", spec), 8):
            styles = batch["styles"]
            real = batch["segment_ids"] > 0
            assert ((styles[real] == NO_STYLE).all()) == want_none
            if not want_none:
                seen |= set(styles[real].tolist())
                # one style per piece: constant within a segment
                for r in range(styles.shape[0]):
                    for seg in np.unique(batch["segment_ids"][r][real[r]]):
                        assert len(set(styles[r][batch["segment_ids"][r] == seg].tolist())) == 1
    assert seen == {STYLES.index("chorale"), STYLES.index("fiddle")}


def test_a_long_piece_gives_one_crop_an_epoch_that_starts_silent(dataset):
    """max_piece_tokens: each longer piece is cut to that many consecutive
    tokens of itself, less the NOTE_OFFs of notes begun before the cut, at
    another start each epoch: every NOTE_OFF of a crop ends a note of the
    crop, and its sounding features are its own (nothing sounds at its
    start, as the model's features assume of a segment that starts inside a
    window); a shorter piece stays whole; a bound past every piece changes nothing."""
    from yoshimidi_jax.data.manifest import shard_paths
    from yoshimidi_jax.data.pipeline import piece_dataset
    from yoshimidi_jax.tokens.sounding import pack, sounding_ages, sounding_before

    paths = shard_paths(dataset, "train")
    spec = BatchSpec(seq_len=64, batch_size=1, seed=2, shuffle=False, num_epochs=2)
    whole = piece_dataset(paths, spec)
    cut = piece_dataset(paths, BatchSpec(seq_len=64, batch_size=1, seed=2, shuffle=False, num_epochs=2,
                                         max_piece_tokens=300))
    starts, dropped = [], 0
    for i in range(2 * 5):  # the 5 pieces, two epochs
        a, b = whole[i], cut[i]
        n = len(a["ids"])
        assert n > 300  # every test piece is longer: each is cut
        ids = b["ids"]
        assert 250 < len(ids) <= 300
        # the crop is 300 tokens of the piece less the NOTE_OFFs that find no note sounding in them
        found = []
        for s in range(n - 299):
            window = a["ids"][s:s + 300]
            off = VOCAB.is_note_off(window)
            orphan = off & ~sounding_before(window)[np.arange(300), np.where(off, window - VOCAB.note_off, 0)]
            if np.array_equal(window[~orphan], ids):
                found.append(s)
                dropped += int(orphan.sum())
                break
        assert found, i
        starts.append(found[0])
        # every NOTE_OFF ends a note the crop started; nothing sounds at its start or after its last OFF
        sounding = sounding_before(ids)
        offs = np.flatnonzero(VOCAB.is_note_off(ids))
        assert sounding[offs, ids[offs] - VOCAB.note_off].all()
        assert not sounding[0].any()
        np.testing.assert_array_equal(b["sounding"], pack(sounding))
        np.testing.assert_allclose(b["age"], sounding_ages(ids, b["times"]))
    assert dropped > 0  # some crops began with notes sounding: their NOTE_OFFs went
    assert starts[:5] != starts[5:]  # another crop the next epoch
    assert len(set(starts)) > 3
    uncut = piece_dataset(paths, BatchSpec(seq_len=64, batch_size=1, seed=2, shuffle=False, num_epochs=2,
                                           max_piece_tokens=10**6))
    assert all(_equal(uncut[i], whole[i]) for i in range(5))
    # through the batches: no segment longer than the crop
    batches = _take(make_batches(dataset, "train", BatchSpec(seq_len=256, batch_size=2, seed=0,
                                                             max_piece_tokens=100)), 8)
    for batch in batches:
        for row in batch["segment_ids"]:
            assert max(np.bincount(row[row > 0])) <= 100
