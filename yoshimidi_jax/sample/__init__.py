"""Constrained sampling with a KV cache, restoring trained models, rendering."""

from yoshimidi_jax.sample.constraints import Constraints, allowed_tokens, sounding_after, violations
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

__all__ = [
    "Constraints", "DecodeState", "SampleOutput", "SamplerConfig", "allowed_tokens", "generate", "make_sampler", "make_stepper",
    "prepare_prompt", "sounding_after", "to_events", "violations",
]
