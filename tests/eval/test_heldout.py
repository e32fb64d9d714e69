"""score_heldout takes the vocabulary from the model: batches written in
another one are an error that names both (a TIME_SHIFT model scored on
TIME-position batches would otherwise read every gap as a wrong token)."""

from __future__ import annotations

import pytest

from tests.model.helpers import small_config
from yoshimidi_jax.eval.heldout import eval_spec, score_heldout
from yoshimidi_jax.model import make_model


@pytest.mark.parametrize("model_shifts, batch_shifts", [(100, 0), (0, 100)])
def test_a_wrong_vocabulary_is_an_error(model_shifts, batch_shifts, tmp_path):
    cfg = small_config()
    cfg.model.time_shifts = model_shifts
    model = make_model(cfg.model)
    spec = eval_spec(64, 2, "none", time_shifts=batch_shifts)
    assert spec.vocab != model.vocab
    with pytest.raises(ValueError) as info:
        score_heldout(model, None, str(tmp_path), spec)  # refused before any data or params are read
    assert spec.vocab.version in str(info.value) and model.vocab.version in str(info.value)


def test_the_copy_scores_real_pieces_better_than_an_untrained_model_alone(few_prepared):
    """Real music repeats its short contexts: mixing in what followed them before
    (sample/copying.py) lowers an untrained (near uniform) model's held-out nats
    per note; a copy that named the wrong followers would raise them (half the
    probability moved off the uniform onto wrong ids); at weight 0 the score is
    the model's own."""
    from tests.model.helpers import model_and_params

    model, params = model_and_params(small_config(max_len=128), seed=0)
    spec = eval_spec(128, 4, "none")
    alone = score_heldout(model, params, few_prepared, spec)
    none = score_heldout(model, params, few_prepared, spec, copy_context=4, copy_weight=0.0)
    copied = score_heldout(model, params, few_prepared, spec, copy_context=2, copy_weight=0.5)
    assert none.nats_per_note == pytest.approx(alone.nats_per_note, rel=1e-5)
    assert alone.notes > 200 and copied.notes == alone.notes
    assert copied.nats_per_note < 0.97 * alone.nats_per_note, (copied.nats_per_note, alone.nats_per_note)
