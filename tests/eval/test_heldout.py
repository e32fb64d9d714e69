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
