"""Constrained sampling with a KV cache, the step-by-step play API, restoring
trained models, rendering."""

from yoshimidi_jax.sample.constraints import Constraints, allowed_tokens, violations
from yoshimidi_jax.sample.sampler import (
    DecodeState,
    SampleOutput,
    SamplerConfig,
    generate,
    make_sampler,
    make_stepper,
    prepare_prompt,
    to_events,
)
from yoshimidi_jax.sample.tracker import Track, advance, init_track, track_tokens

__all__ = [
    "Constraints", "DecodeState", "SampleOutput", "SamplerConfig", "Track", "advance", "allowed_tokens", "generate",
    "init_track", "make_sampler", "make_stepper", "prepare_prompt", "to_events", "track_tokens", "violations",
]
