"""A model that writes time as TIME_SHIFT tokens: it trains, it is scored
per note beside a two-hot model on the same held-out notes, it samples
music on the 10 ms grid, and the instrument refuses it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.train.conftest import small_config


@pytest.fixture(scope="module")
def two_runs(train_data, tmp_path_factory):
    """A two-hot model and a TIME_SHIFT model, trained 6 steps each."""
    from yoshimidi_jax.restore import restore
    from yoshimidi_jax.train.loop import train

    runs = {}
    for name, shifts in (("two_hot", 0), ("grid", 100)):
        cfg = small_config(train_data, steps=6)
        cfg.model.time_shifts = shifts
        workdir = str(tmp_path_factory.mktemp(name))
        train(cfg, workdir)
        runs[name] = (cfg, restore(workdir))
    return runs


def test_vocab_size_follows_time_shifts(train_data):
    from yoshimidi_jax.config import ConfigError, check_config

    cfg = small_config(train_data)
    cfg.model.time_shifts = 100
    assert cfg.model.vocab_size == 633
    check_config(cfg)
    cfg.model.vocab_size = 533
    with pytest.raises(ConfigError, match="vocab_size=533 differs"):
        check_config(cfg)


def test_batches_write_time_as_shifts(train_data):
    from yoshimidi_jax.data.pipeline import make_batches
    from yoshimidi_jax.tokens import TIME
    from yoshimidi_jax.train.loop import batch_spec

    cfg = small_config(train_data)
    cfg.model.time_shifts = 100
    spec = batch_spec(cfg, "train")
    batch = next(iter(make_batches(train_data, "train", spec)))
    vocab = spec.vocab
    assert not (batch["inputs"] == TIME).any()
    shifts = vocab.is_time_shift(batch["inputs"])
    assert shifts.any()
    np.testing.assert_allclose(batch["input_times"][shifts], vocab.shift_seconds(batch["inputs"][shifts]), atol=1e-6)
    assert (batch["input_times"][~shifts] == 0).all()


def test_both_models_are_scored_on_the_same_notes(two_runs, train_data):
    from yoshimidi_jax.eval.heldout import eval_spec, score_heldout

    from yoshimidi_jax.data.manifest import shard_paths
    from yoshimidi_jax.data.pipeline import piece_dataset

    scores, lengths = {}, {}
    for name, (cfg, restored) in two_runs.items():
        spec = eval_spec(cfg.data.seq_len, cfg.data.batch_size, "none", cfg.model.time_shifts)
        scores[name] = score_heldout(restored.model, restored.params, train_data, spec)
        lengths[name] = [len(p["ids"]) for p in piece_dataset(shard_paths(train_data, "eval"), spec)]
    grid, two_hot = scores["grid"], scores["two_hot"]
    # every token of every held-out piece is scored once, but its BOS (no CONTROL: controls="none")
    assert two_hot.tokens == sum(n - 1 for n in lengths["two_hot"])
    assert grid.tokens == sum(n - 1 for n in lengths["grid"])
    assert grid.notes == two_hot.notes > 0  # so both score the same notes
    assert grid.tokens > two_hot.tokens  # a gap is one or more shift ids
    assert grid.time_nats == 0 and two_hot.time_nats > 0
    # barely trained: a few nats per token, near log(V) for both
    for s in scores.values():
        assert 1.0 < s.nats_per_token < np.log(633) + 1
    with pytest.raises(ValueError, match="shift ids"):
        score_heldout(two_runs["grid"][1].model, two_runs["grid"][1].params, train_data,
                      eval_spec(64, 8, "none", 0))


def test_grid_model_samples_music_on_the_grid(two_runs):
    import jax

    from yoshimidi_jax.sample import Constraints, generate, to_events
    from yoshimidi_jax.sample.constraints import violations
    from yoshimidi_jax.tokens import TIME

    cfg, restored = two_runs["grid"]
    model, vocab = restored.model, restored.model.vocab
    seqs, out = generate(model, restored.params, jax.random.key(0), num_events=48, batch=2,
                         constraints=Constraints(allow_eos=False))
    for seq in seqs:
        assert not (seq.ids == TIME).any()
        shifts = vocab.is_time_shift(seq.ids)
        np.testing.assert_allclose(seq.times[shifts], vocab.shift_seconds(seq.ids[shifts]), atol=1e-6)
        assert violations(seq.ids[1:], seq.times[1:], constraints=Constraints(allow_eos=False), vocab=vocab) == []
        events = to_events(seq, vocab)
        np.testing.assert_allclose(np.round(events.onset_s / 0.01) * 0.01, events.onset_s, atol=1e-4)


def test_the_instrument_refuses_a_grid_model(two_runs):
    from yoshimidi_jax.play.player import Player

    _, restored = two_runs["grid"]
    with pytest.raises(ValueError, match="needs continuous time"):
        Player(restored.model, restored.params)
