r"""Samples music from a model: writes OUT.mid, OUT.png (piano roll), OUT.wav.

    python -m experiments.sample --config=configs/tiny.py --out=out.mid        # random init: noise, valid files
    python -m experiments.sample --workdir=runs/NAME --out=out.mid --num_events=512 \
        --temperature=0.9 --top_p=0.95 --seed=3 [--prompt=some.mid] [--controls=1/0/2,5/*/*]

    python -m experiments.sample --workdir=runs/tiny --out=up.mid --controls=2/0/1,2/0/1,7/2/2 [--strict]
    python -m experiments.sample --workdir=runs/tiny --out=played.mid --player_walk=48 [--strict]
    python -m experiments.sample --workdir=runs/tiny --out=jig.mid --style=fiddle [--player_walk=48]

With --workdir the run's config.json and latest orbax checkpoint are used
(random-init params, with a message, where there is no checkpoint yet).
--controls: comma-separated per-press controls INTERVAL/CHORD/VELOCITY, each a
class number, a name or '*' (any): interval 0 same, 1..4 up by 1-2 / 3-5 /
6-11 / 12+ (up-step, up-skip, up-leap, up-octave), 5..8 the same downwards
(down-step...); chord 0..4 for 1..5+ notes (single, two, three, four, five);
velocity 0..2 (soft, medium, hard). They are used in order, one per press the
model starts; --strict masks the choices so every given attribute holds.
--player_walk=N plays N presses of a seeded player-like script through the
step-by-step play API (play/player.py): the script owns rhythm and dynamics,
the model picks the pitches. Both print the piece's adherence.
--style: the texture asked of the whole piece (tokens/styles.py): chorale,
classical, renaissance, fiddle, or any (the default: none asked); for a
sample and for --player_walk alike. A run trained without styles
(model.num_styles = 0) takes only 'any'. A sample asked for a style leans
into it by --style_guidance (classifier-free guidance, sample/guidance.py:
by default each style's own weight, guidance.WEIGHTS: 2 for chorale and
fiddle, 3.5 for renaissance, 1 for classical; 1 takes the style as the model
does, at half the work).
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from yoshimidi_jax import compile_cache
from yoshimidi_jax.midi import read_midi, write_midi
from yoshimidi_jax.model import model_cost
from yoshimidi_jax.sample import Constraints, copying, generate, guidance, to_events
from yoshimidi_jax.eval.adherence import score
from yoshimidi_jax.play.player import Player
from yoshimidi_jax.play.press import PlaySettings, Press
from yoshimidi_jax.play.walk import player_walk
from yoshimidi_jax.midi.render import piano_roll_png, render_wav
from yoshimidi_jax.restore import restore
from yoshimidi_jax.sample.prompt import prompt_from_events
from yoshimidi_jax.sample.sampler import TIME_MODES
from yoshimidi_jax.tokens import TokenSequence
from yoshimidi_jax.tokens.controls import Control, ControlError, parse_controls
from yoshimidi_jax.tokens.styles import NO_STYLE, STYLES, StyleError, check_style, style_id, style_name

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "model config file (used when --workdir has no config.json)")
flags.DEFINE_string("workdir", None, "a training run's workdir (config.json + checkpoints/)")
flags.DEFINE_string("out", "out.mid", "output .mid path; .png and .wav are written beside it")
flags.DEFINE_integer("num_events", 512, "new token positions to sample (max events)")
# 0.8 / 0.9 (nucleus per token family): measured best of the tried settings against held-out music
# (benchmarks.music_quality: mean OA 0.72 vs 0.51 at 1.0 / 1.0; docs/benchmarks.md, "How good is the music")
flags.DEFINE_float("temperature", 0.8, "softmax temperature (<= 0: greedy)")
flags.DEFINE_float("top_p", 0.9, "nucleus sampling mass, within each token family (1: off)")
flags.DEFINE_integer("top_k", 0, "keep the k most likely ids (0: off)")
flags.DEFINE_integer("copy_context", copying.CONTEXT, "mix in what followed the last N tokens where they occurred "
                     "before (sample/copying.py; 0: the model alone; off with --controls, which steer instead)")
flags.DEFINE_float("copy_weight", copying.WEIGHT, "the copy's share of the next token's probability, in [0, 1)")
flags.DEFINE_integer("seed", 0, "PRNG seed: the same seed gives the same music")
flags.DEFINE_string("prompt", None, "a .mid file whose beginning is the prompt")
flags.DEFINE_integer("prompt_tokens", 256, "how many tokens of --prompt to use")
flags.DEFINE_list("controls", [], "per-press controls INTERVAL/CHORD/VELOCITY (numbers or names, '*' = any)")
flags.DEFINE_bool("strict", False, "mask choices so that every given control attribute holds")
flags.DEFINE_string("style", "any", f"the piece's style: any (none asked) or one of {', '.join(STYLES)}")
flags.DEFINE_float("style_guidance", None, "with --style: sample from the logits without the style plus this "
                   "weight times its difference (classifier-free guidance; 1: the style as the model takes it; "
                   "default: the style's own weight, sample/guidance.py WEIGHTS)")
flags.DEFINE_integer("player_walk", 0, "play this many presses of a seeded player-like script (play API)")
flags.DEFINE_integer("pitch_lo", 0, "lowest NOTE_ON pitch")
flags.DEFINE_integer("pitch_hi", 127, "highest NOTE_ON pitch")
flags.DEFINE_bool("allow_controls", True, "where no control is given, let the model sample its own CONTROL tokens")
flags.DEFINE_enum(
    "time_mode", "refined", list(TIME_MODES),
    "TIME values: refined (a sampled support, refined by its neighbours), expectation or sample",
)
flags.DEFINE_bool("wav", True, "also render a .wav")


def parse_control_flags(specs: list[str]) -> list[Control]:
    try:
        return parse_controls(specs)
    except ControlError as e:
        raise app.UsageError(f"--controls: {e}") from None


def parse_style_flag(name: str, num_styles: int | None = None) -> int:
    """--style -> a style index (NO_STYLE for 'any'); with num_styles (the
    restored model's), also checks that the model takes it. A usage error
    names the flag and the allowed values."""
    try:
        style = style_id(name)
        return style if num_styles is None else check_style(style, num_styles)
    except StyleError as e:
        raise app.UsageError(f"--style: {e}") from None


def play_walk(restored, num_presses: int, seed: int, style: int) -> tuple[TokenSequence, list[Control]]:
    """A player-like script through the play API, in `style` -> (the session's tokens, the controls)."""
    player = Player(restored.model, restored.params, cache_len=restored.config.model.max_len)
    settings = PlaySettings(temperature=FLAGS.temperature, top_p=FLAGS.top_p, strict=FLAGS.strict,
                            pitch_lo=FLAGS.pitch_lo, pitch_hi=FLAGS.pitch_hi)
    state = player.start(jax.random.key(seed), style=style)
    controls, held = [], None
    for i, p in enumerate(player_walk(num_presses, seed=seed)):
        if held is not None:  # the previous press is released half way to this one
            state = player.release(state, p.dt_s / 2, held.pitches)
        press = Press(dt_s=p.dt_s / 2 if i else 0.0, velocity=p.velocity, num_keys=p.num_keys, interval=p.interval)
        held, state = player.press(state, press, settings)
        controls.append(press.control)
    # the whole session (the state keeps only the recent tokens once the cache refills)
    return TokenSequence(*state.host.tokens()), controls


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every file it restores; our own lines are printed
    parse_style_flag(FLAGS.style)  # a bad name fails before the model is restored
    if FLAGS.style_guidance is not None:
        try:
            guidance.check_weight(FLAGS.style_guidance)
        except ValueError as e:
            raise app.UsageError(f"--{e}") from None
    compile_cache.enable()  # a second run loads the sampler instead of compiling it (docs/sampling.md, "Compile once")
    restored = restore(FLAGS.workdir, FLAGS.config, seed=FLAGS.seed)
    print(restored.message)
    print(model_cost(restored.config.model).summary())
    style = parse_style_flag(FLAGS.style, restored.model.num_styles)

    prompt = None
    if FLAGS.prompt:
        prompt = prompt_from_events(read_midi(FLAGS.prompt).events, restored.model.vocab, FLAGS.prompt_tokens)
    constraints = Constraints(FLAGS.pitch_lo, FLAGS.pitch_hi, allow_controls=FLAGS.allow_controls,
                              strict=FLAGS.strict)
    controls = parse_control_flags(FLAGS.controls)
    if FLAGS.player_walk and (controls or prompt is not None):
        raise app.UsageError("--player_walk plays its own script: leave out --controls and --prompt")
    t0 = time.perf_counter()
    if FLAGS.player_walk:
        seq, controls = play_walk(restored, FLAGS.player_walk, FLAGS.seed, style)
        _write_and_report(restored, seq, controls, complete=True, seconds=time.perf_counter() - t0, style=style)
        return
    seqs, out = generate(
        restored.model,
        restored.params,
        jax.random.key(FLAGS.seed),
        num_events=FLAGS.num_events,
        prompt=prompt,
        temperature=FLAGS.temperature,
        top_p=FLAGS.top_p,
        top_k=FLAGS.top_k,
        controls=np.array([c.id(restored.model.vocab) for c in controls], np.int32) if controls else None,
        constraints=constraints,
        time_mode=FLAGS.time_mode,
        style=style,
        copy_context=0 if controls else FLAGS.copy_context,
        copy_weight=FLAGS.copy_weight,
        style_guidance=guidance.weight_for(style, FLAGS.style_guidance),
    )
    used = controls[: int(np.asarray(out.forced[0]).sum())]
    _write_and_report(restored, seqs[0], used, complete=False, seconds=time.perf_counter() - t0, style=style)


def _write_and_report(restored, seq: TokenSequence, controls: list[Control], complete: bool, seconds: float,
                      style: int) -> None:
    events = to_events(seq, restored.model.vocab)

    stem = os.path.splitext(FLAGS.out)[0]
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    mid, png, wav = stem + ".mid", stem + ".png", stem + ".wav"
    write_midi(events, mid)
    styled = f", style {style_name(style)}" if style != NO_STYLE else ""
    piano_roll_png(events, png, title=f"{os.path.basename(mid)}: {len(events)} notes, seed {FLAGS.seed}{styled}")
    renderer = render_wav(events, mid, wav) if FLAGS.wav else None
    report = {
        "mid": mid, "png": png, "wav": wav if FLAGS.wav else None, "renderer": renderer,
        "notes": len(events), "tokens": int(len(seq)),
        "seconds_audio": float(events.end_s.max()) if len(events) else 0.0,
        "sample_seconds": round(seconds, 3), "step": restored.step, "style": style_name(style),
    }
    if controls:
        counts = score(events, controls, complete=complete)
        report.update(adherence=counts.rates(), controlled_presses=counts.given["all"], strict=FLAGS.strict)
    print(json.dumps(report))


if __name__ == "__main__":
    app.run(main)
