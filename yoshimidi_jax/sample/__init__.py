"""Decoding only: the jitted scan sampler with a KV cache (sampler.py), its
grammar and strict masks (constraints.py), the Track of what the tokens so far
imply (tracker.py), the copy of what followed the same context before
(copying.py), classifier-free guidance of the style (guidance.py), and the
samples written at each eval (step_sample.py)."""

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
