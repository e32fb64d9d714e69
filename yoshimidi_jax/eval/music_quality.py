"""Music quality of a model's samples: the figures of eval/music_metrics.py
(muspy's standard figures, the melody, stuck notes, motif recurrence,
beat-grid consistency), each as a mean and as the overlapping area (OA, Yang &
Lerch 2018; eval/overlap.py) of the samples' per-piece values against
held-out excerpts of matched length, with training-piece excerpts scored the
same way in the same run as the ceiling. benchmarks/music_quality.py is the
command line; shared/DESIGN.md "Music quality" says why.

What is compared (every set is a list of NoteEvents):

  samples    unconditioned samples: `events` new tokens each from BOS, no
             style, no control given (the model samples its own CONTROL
             tokens), EOS masked so every row has `events` tokens; the
             sampler's window (`window`, None: the model's context) slides
             over longer rows
  player     the notes the model chooses in a player-like walk
             (play/walk.py through the play API, play/player.py; each press
             released half way to the next, as experiments/sample.py plays
             it): what a player hears. The script owns rhythm, dynamics and
             durations, so the rhythm figures there measure the script; the
             pitch figures measure the model
  heldout    excerpts of the eval split, one per sample, matched in length
  train      excerpts of the train split scored the same way (the ceiling)

Matched length: a sample's length is its count of *music tokens* (every id
but PAD/BOS/EOS/SEP and CONTROL: the note, velocity and time tokens that make
the notes). A piece is written in the model's vocabulary as the training
pipeline writes it (TIME positions as TIME_SHIFT runs where the model uses
them), its music tokens taken, and an excerpt is a window of as many of them
as the sample has, at a seeded random start, in a piece drawn uniformly from
those at least that long (the longest piece, whole, where none is). Every
piece, sample or excerpt, is decoded and moved so its first note starts at
0 s (an excerpt's start is arbitrary, and a leading silence would count as
empty beats and shift the measures).

Figures per set (each `FIGURE: {samples, heldout, train, oa, oa_train}`:
the means over pieces, NaN-skipping, the OA of samples vs held-out and of
train vs held-out): the 8 muspy figures, longest_note_s, motif_recurrence and
beat_grid_consistency (`OA_FIGURES`; out_of_scale_rate is 1 - scale
consistency and would count twice). `mean_oa` / `mean_oa_train` are their
mean OA (NaN OAs skipped). The melody: `melody_oa` / `melody_oa_train`, the
histogram overlap of the pooled top-line interval histograms (+-12 semitones),
and `melody_abs_interval`, the mean absolute top-line interval (semitones,
pooled). Stuck notes: `stuck_threshold_s`, the 95th percentile (linear
interpolation) of the held-out excerpts' longest notes, and `stuck_share`,
the share of each set's pieces whose longest note is longer than that (a
piece with no note is not stuck), so held-out scores about 5% by
construction (at most 5%, less where longest notes tie).

Per style (`per_style`, with `styles="all"` and a model that takes a style):
for every style with pieces in the data, rows sampled with that style given
(guided: sample/guidance.py), against that style's held-out excerpts (and
training excerpts as the ceiling): `monophonic_share` (the share of pieces never sounding two
pitches at once on music_metrics' clock: at most one distinct pitch at every
step), `polyphony` (muspy's) and `mean_oa`, each beside the held-out value
(mean_oa beside `mean_oa_train`). `n` says how many held-out and training
pieces the style has; where it has fewer than `FEW_HELDOUT` held-out pieces,
the samples are also compared with that style's training excerpts
(`vs_train`: the training value of each figure and the OA of samples vs
training excerpts) and `note` says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from yoshimidi_jax.data.records import PieceRecord
from yoshimidi_jax.eval import music_metrics as mm
from yoshimidi_jax.eval.overlap import histogram_overlap, overlapping_area
from yoshimidi_jax.eval.splits import split_records
from yoshimidi_jax.midi import NoteEvents
from yoshimidi_jax.model import Transformer
from yoshimidi_jax.play.batch import BatchPlayer, FlushJob, PressJob
from yoshimidi_jax.play.host import SessionHost
from yoshimidi_jax.play.press import PlaySettings, Press
from yoshimidi_jax.play.walk import player_walk
from yoshimidi_jax.sample import copying, guidance
from yoshimidi_jax.sample.constraints import Constraints
from yoshimidi_jax.sample.sampler import generate
from yoshimidi_jax.tokens import BOS, EOS, PAD, SEP, TokenSequence, Vocab, decode
from yoshimidi_jax.tokens.styles import NO_STYLE, STYLES
from yoshimidi_jax.tokens.time_shifts import to_time_shifts

# the evaluation (experiments/sample.py's default temperature and top-p)
SAMPLES = 60
EVENTS = 400
HELDOUT_EXCERPTS = 60
TRAIN_EXCERPTS = 40
TEMPERATURE = 0.8  # experiments.sample's defaults
TOP_P = 0.9
COPY_CONTEXT = copying.CONTEXT
COPY_WEIGHT = copying.WEIGHT
STYLE_GUIDANCE = None  # the samples asked for a style: each style's own weight (guidance.weight_for)

STUCK_QUANTILE = 95.0  # percent
FEW_HELDOUT = 5  # a style with fewer held-out pieces is also compared with its training excerpts
OA_FIGURES: tuple[str, ...] = mm.MUSPY_FIGURES + ("longest_note_s", "motif_recurrence", "beat_grid_consistency")


# ------------------------------------------------------------ tokens and excerpts


def music_tokens(ids: np.ndarray, times: np.ndarray, vocab: Vocab) -> TokenSequence:
    """The tokens that make notes: every id but PAD/BOS/EOS/SEP and CONTROL."""
    ids = np.asarray(ids, np.int32)
    keep = ~np.isin(ids, (PAD, BOS, EOS, SEP)) & ~vocab.is_control(ids)
    return TokenSequence(ids[keep], np.asarray(times, np.float32)[keep])


def record_tokens(record: PieceRecord, vocab: Vocab) -> TokenSequence:
    """A record's music tokens in `vocab`, as the training pipeline writes them
    (records hold TIME positions; a TIME_SHIFT vocabulary gets shift runs)."""
    ids, times = record.tokens.ids, record.tokens.times
    if vocab.time_shifts:
        ids, times = to_time_shifts(ids, times, vocab)
    return music_tokens(ids, times, vocab)


def draw_excerpts(pieces: Sequence[TokenSequence], lengths: Sequence[int],
                  rng: np.random.Generator) -> list[TokenSequence]:
    """One excerpt per length: `length` consecutive tokens at a random start of
    a piece drawn uniformly from those at least that long (the longest piece,
    whole, where none is)."""
    if not pieces:
        raise ValueError("no piece to draw excerpts from")
    sizes = np.array([len(p) for p in pieces])
    out = []
    for length in lengths:
        length = int(length)
        fits = np.flatnonzero(sizes >= length)
        if fits.size == 0:
            out.append(pieces[int(np.argmax(sizes))])
            continue
        piece = pieces[int(fits[rng.integers(fits.size)])]
        start = int(rng.integers(len(piece) - length + 1))
        out.append(TokenSequence(piece.ids[start:start + length], piece.times[start:start + length]))
    return out


def events_of(seq: TokenSequence, vocab: Vocab) -> NoteEvents:
    """Tokens -> notes, moved so the first note starts at 0 s."""
    events = decode(seq.ids, seq.times, vocab)
    if len(events) == 0:
        return events
    return NoteEvents.from_arrays(events.onset_s - events.onset_s.min(), events.duration_s, events.pitch,
                                  events.velocity)


# ------------------------------------------------------------ figures of sets (pure)


def stuck_threshold(longest_s: np.ndarray, quantile: float = STUCK_QUANTILE) -> float:
    """The `quantile`-th percentile of the finite longest-note values; NaN when none."""
    values = np.asarray(longest_s, np.float64)
    values = values[np.isfinite(values)]
    return float(np.percentile(values, quantile)) if values.size else float("nan")


def stuck_share(longest_s: np.ndarray, threshold: float) -> float:
    """Share of pieces whose longest note is longer than `threshold` (no note: not stuck)."""
    values = np.asarray(longest_s, np.float64)
    if values.size == 0 or not np.isfinite(threshold):
        return float("nan")
    return float(np.mean(np.where(np.isfinite(values), values, -np.inf) > threshold))


def is_monophonic(events: NoteEvents, clock: mm.Clock = mm.Clock()) -> bool:
    """Never two distinct pitches sounding at once, on music_metrics' clock."""
    sounding = mm.distinct_pitches_sounding(mm.quantise(events, clock))
    return bool(sounding.size == 0 or sounding.max() <= 1)


def monophonic_share(pieces: Sequence[NoteEvents]) -> float:
    return float(np.mean([is_monophonic(p) for p in pieces])) if pieces else float("nan")


def _mean(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def abs_interval(pieces: Sequence[NoteEvents]) -> float:
    """Mean absolute top-line interval (semitones), pooled over pieces."""
    steps = [np.abs(mm.melody_intervals(mm.quantise(p))) for p in pieces]
    pooled = np.concatenate(steps) if steps else np.zeros(0)
    return float(pooled.mean()) if pooled.size else float("nan")


@dataclasses.dataclass(frozen=True)
class SetFigures:
    """One set of pieces, measured once: the per-piece figures and the pooled melody."""

    figures: dict  # name -> [pieces]
    melody: np.ndarray  # pooled top-line interval histogram
    abs_interval: float
    monophonic_share: float
    tokens: float  # mean tokens per piece (what was matched)
    n: int

    @staticmethod
    def of(pieces: Sequence[NoteEvents], tokens: Sequence[int] = ()) -> "SetFigures":
        return SetFigures(mm.figures_of_pieces(pieces), mm.melody_interval_histogram(pieces),
                          abs_interval(pieces), monophonic_share(pieces),
                          float(np.mean(tokens)) if len(tokens) else float("nan"), len(pieces))


def mean_oa(a: SetFigures, b: SetFigures, figures: Sequence[str] = OA_FIGURES) -> float:
    """Mean over figures of the OA of a's and b's per-piece values (NaN OAs skipped)."""
    return _mean(np.array([overlapping_area(a.figures[f], b.figures[f]) for f in figures]))


def compare_sets(samples: SetFigures, heldout: SetFigures, train: SetFigures) -> dict:
    """Every figure of the samples beside held-out and training excerpts:
    means, OA against held-out, and the training excerpts' OA (the ceiling)."""
    sets = {"samples": samples, "heldout": heldout, "train": train}
    out: dict[str, Any] = {"n": {k: s.n for k, s in sets.items()}, "tokens": {k: s.tokens for k, s in sets.items()}}
    oas, oas_train = [], []
    for name in OA_FIGURES:
        oa = overlapping_area(samples.figures[name], heldout.figures[name])
        oa_train = overlapping_area(train.figures[name], heldout.figures[name])
        oas.append(oa)
        oas_train.append(oa_train)
        out[name] = {**{k: _mean(s.figures[name]) for k, s in sets.items()}, "oa": oa, "oa_train": oa_train}
    out["mean_oa"], out["mean_oa_train"] = _mean(np.array(oas)), _mean(np.array(oas_train))
    out["melody_oa"] = histogram_overlap(samples.melody, heldout.melody)
    out["melody_oa_train"] = histogram_overlap(train.melody, heldout.melody)
    out["melody_abs_interval"] = {k: s.abs_interval for k, s in sets.items()}
    threshold = stuck_threshold(heldout.figures["longest_note_s"])
    out["stuck_threshold_s"] = threshold
    out["stuck_share"] = {k: stuck_share(s.figures["longest_note_s"], threshold) for k, s in sets.items()}
    return out


def compare_style(samples: SetFigures, heldout: SetFigures, train: SetFigures, heldout_pieces: int,
                  train_pieces: int, few: int = FEW_HELDOUT) -> dict:
    """One style: monophonic share, polyphony and mean OA of samples beside the
    style's held-out excerpts; with fewer than `few` held-out pieces, also
    against its training excerpts (`vs_train`), and a note saying so."""
    out: dict[str, Any] = {
        "n": {"heldout_pieces": heldout_pieces, "train_pieces": train_pieces, "samples": samples.n,
              "heldout": heldout.n, "train": train.n},
        "monophonic_share": {"samples": samples.monophonic_share, "heldout": heldout.monophonic_share},
        "polyphony": {"samples": _mean(samples.figures["polyphony"]), "heldout": _mean(heldout.figures["polyphony"])},
        "mean_oa": mean_oa(samples, heldout) if heldout.n else float("nan"),
        "mean_oa_train": mean_oa(train, heldout) if heldout.n and train.n else float("nan"),
    }
    if heldout_pieces < few:
        out["vs_train"] = {
            "monophonic_share": train.monophonic_share,
            "polyphony": _mean(train.figures["polyphony"]),
            "mean_oa": mean_oa(samples, train) if train.n else float("nan"),
        }
        held_says = ("no held-out piece of this style: nothing to compare with held out" if heldout_pieces == 0
                     else f"only {heldout_pieces} held-out piece(s) of this style (< {few}): its held-out "
                          "figures rest on few pieces")
        out["note"] = (f"{held_says}; vs_train compares the samples with {train.n} excerpts of its "
                       f"{train_pieces} training piece(s)")
    return out


def rounded(tree: Any, digits: int = 4) -> Any:
    """Floats rounded, NaN/inf as None (JSON has no NaN), numpy scalars as Python numbers."""
    if isinstance(tree, dict):
        return {k: rounded(v, digits) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [rounded(v, digits) for v in tree]
    if isinstance(tree, (bool, np.bool_)):
        return bool(tree)
    if isinstance(tree, (int, np.integer)):
        return int(tree)
    if isinstance(tree, (float, np.floating)):
        return round(float(tree), digits) if np.isfinite(tree) else None
    return tree


# ------------------------------------------------------------ the model's pieces


def sample_rows(model: Transformer, params, key: jax.Array, styles: np.ndarray, events: int, temperature: float,
                top_p: float, window: int | None, copy_context: int = 0,
                copy_weight: float = 0.0, style_guidance: float = 1.0) -> list[TokenSequence]:
    """One row per entry of `styles` (NO_STYLE: unconditioned), `events` new
    tokens each from BOS, EOS masked -> each row's music tokens. copy_*,
    style_guidance: generate's."""
    seqs, _ = generate(model, params, key, num_events=events, batch=len(styles), temperature=temperature,
                       top_p=top_p, constraints=Constraints(allow_eos=False), style=np.asarray(styles, np.int32),
                       window=window, copy_context=copy_context, copy_weight=copy_weight,
                       style_guidance=style_guidance)
    return [music_tokens(s.ids, s.times, model.vocab) for s in seqs]


def sample_styles(model: Transformer, params, key: jax.Array, weights: dict[int, float], samples: int,
                  events: int, temperature: float, top_p: float, window: int | None, copy_context: int = 0,
                  copy_weight: float = 0.0) -> dict[int, list[TokenSequence]]:
    """`samples` rows asked for each style of `weights` (style -> its guidance
    weight) -> style -> its rows. The styles of one weight share a sampler
    call, in `weights`' order; the calls go by weight, lowest first, the first
    with `key` itself (so one weight for all is the one call it always was),
    the i-th with fold_in(key, i)."""
    out: dict[int, list[TokenSequence]] = {}
    for i, weight in enumerate(sorted(set(weights.values()))):
        group = [s for s, w in weights.items() if w == weight]
        got = sample_rows(model, params, key if i == 0 else jax.random.fold_in(key, i),
                          np.repeat(np.array(group, np.int32), samples), events, temperature, top_p, window,
                          copy_context, copy_weight, weight)
        for j, s in enumerate(group):
            out[s] = got[j * samples:(j + 1) * samples]
    return out


def walk_rows(model: Transformer, params, key: jax.Array, walks: int, events: int, temperature: float,
              top_p: float, window: int | None, seed: int) -> list[TokenSequence]:
    """`walks` player-like sessions through the play API (play/walk.py scripts,
    seed seed * 1000 + row; the PRNG key folded with the row), played side by
    side as one batch (play/batch.py: the tokens of play/player.py), each
    press released half way to the next as experiments/sample.py plays it.
    A session ends with the press that brings it to `events` music tokens
    (that press's notes sound to its end) -> each session's music tokens."""
    cache_len = None if window is None else (window or events * 2 + 64)  # 0: one cache, never refilled
    bp = BatchPlayer(model, params, num_slots=walks, cache_len=cache_len)
    settings = PlaySettings(temperature=temperature, top_p=top_p)
    vocab = model.vocab
    scripts = [player_walk(events, seed=seed * 1000 + r) for r in range(walks)]  # more presses than needed
    for r in range(walks):
        bp.open(r, jax.random.fold_in(key, r))
        bp.host[r] = SessionHost.start(keep_history=True)  # record every token (a server keeps none)
    held: list = [None] * walks
    counted, made = [0] * walks, [0] * walks  # history chunks counted, music tokens in them
    done: list = [None] * walks  # each finished session's history
    # every session presses in every batch, the finished ones too (their presses
    # are not kept), so the batch keeps one shape and compiles once
    for i in range(events):
        if all(d is not None for d in done):
            break
        flush = [FlushJob(r) for r in range(walks) if held[r] is not None
                 and bp.release(r, scripts[r][i].dt_s / 2, held[r].pitches)]
        if flush:
            bp.run(flush)
        jobs = []
        for r in range(walks):
            p = scripts[r][i]
            jobs.append(PressJob(r, Press(dt_s=p.dt_s / 2 if i else 0.0, velocity=p.velocity,
                                          num_keys=p.num_keys, interval=p.interval), settings))
        for r, notes in enumerate(bp.run(jobs)):
            held[r] = notes
            if done[r] is not None:
                continue
            history = bp.host[r].history
            made[r] += sum(len(music_tokens(ids, times, vocab)) for ids, times in history[counted[r]:])
            counted[r] = len(history)
            if made[r] >= events or i == events - 1:
                done[r] = history
    return [music_tokens(np.concatenate([c[0] for c in h]), np.concatenate([c[1] for c in h]), vocab)
            for h in done]


# ------------------------------------------------------------ the measurement


@dataclasses.dataclass(frozen=True)
class Split:
    """A split's pieces as music tokens in the model's vocabulary, with their styles."""

    pieces: list
    styles: np.ndarray

    @staticmethod
    def read(data_dir: str, split: str, vocab: Vocab) -> "Split":
        records = list(split_records(data_dir, split))
        return Split([record_tokens(r, vocab) for r in records], np.array([r.style for r in records], np.int64))

    def of_style(self, style: int | None) -> list:
        return list(self.pieces) if style is None else [p for p, s in zip(self.pieces, self.styles) if s == style]


def _excerpt_set(pieces: list, lengths: list[int], rng: np.random.Generator, vocab: Vocab) -> SetFigures:
    if not pieces:
        return SetFigures.of([])
    excerpts = draw_excerpts(pieces, lengths, rng)
    return SetFigures.of([events_of(e, vocab) for e in excerpts], [len(e) for e in excerpts])


def _matched(lengths: list[int], count: int) -> list[int]:
    """`count` lengths cycling through the samples' lengths."""
    return [lengths[i % len(lengths)] for i in range(count)]


def _block(rows: list[TokenSequence], held: list, train: list, heldout_excerpts: int, train_excerpts: int,
           rng: np.random.Generator, vocab: Vocab) -> tuple[SetFigures, SetFigures, SetFigures]:
    lengths = [len(r) for r in rows]
    samples = SetFigures.of([events_of(r, vocab) for r in rows], lengths)
    return (samples, _excerpt_set(held, _matched(lengths, heldout_excerpts), rng, vocab),
            _excerpt_set(train, _matched(lengths, train_excerpts), rng, vocab))


def measure_music_quality(model: Transformer, params, data_dir: str, *, samples: int = SAMPLES,
                          events: int = EVENTS, heldout_excerpts: int = HELDOUT_EXCERPTS,
                          train_excerpts: int = TRAIN_EXCERPTS, temperature: float = TEMPERATURE,
                          top_p: float = TOP_P, seed: int = 0, styles: str = "all", player: bool = True,
                          walks: int = 0, window: int | None = None, copy_context: int = COPY_CONTEXT,
                          copy_weight: float = COPY_WEIGHT, style_guidance: float | None = STYLE_GUIDANCE) -> dict:
    """The music-quality report (module docstring): unconditioned samples'
    figures at the top level, `player` (the walk's; None when off or the
    model cannot be played) and `per_style` (None with styles="none"; {} and
    `per_style_note` when the model or the data has no styles).
    walks: player sessions (0: as many as samples). copy_context, copy_weight:
    the samples' copy of what followed the same context before (sample/copying.py;
    not the player's walks: the player steers). style_guidance: the samples
    asked for a style lean into it by this weight (sample/guidance.py; None:
    each style's own, guidance.weight_for). Values are rounded, NaN as None."""
    if styles not in ("all", "none"):
        raise ValueError(f"styles must be 'all' or 'none', got {styles!r}")
    if samples < 1 or events < 1:
        raise ValueError(f"samples and events must be >= 1, got {samples} and {events}")
    if style_guidance is not None:
        guidance.check_weight(style_guidance)
    vocab = model.vocab
    held, train = Split.read(data_dir, "eval", vocab), Split.read(data_dir, "train", vocab)
    if not held.pieces or not train.pieces:
        raise ValueError(f"{data_dir} needs pieces in both splits (eval: {len(held.pieces)}, "
                         f"train: {len(train.pieces)})")
    key = jax.random.key(seed)

    style_note = None
    style_ids: list[int] = []
    if styles == "all":
        known = set(held.styles.tolist()) | set(train.styles.tolist())
        if not model.num_styles:
            style_note = "the model takes no style (model.num_styles = 0)"
        else:
            style_ids = [s for s in range(min(model.num_styles, len(STYLES))) if s in known]
            if not style_ids:
                style_note = "no piece of the data has a style"

    weights = {s: guidance.weight_for(s, style_guidance) for s in style_ids}
    # the unconditioned rows in one sampler call, then `samples` rows per style (guided: one call per weight)
    rows = sample_rows(model, params, jax.random.fold_in(key, 0), np.full(samples, NO_STYLE, np.int32), events,
                       temperature, top_p, window, copy_context, copy_weight)
    styled = sample_styles(model, params, jax.random.fold_in(key, 2), weights, samples, events, temperature, top_p,
                           window, copy_context, copy_weight)
    for s in style_ids:
        rows += styled[s]

    result: dict[str, Any] = {
        "temperature": temperature, "top_p": top_p, "events": events, "seed": seed, "window": window,
        "copy_context": copy_context, "copy_weight": copy_weight,
        "style_guidance": {STYLES[s]: w for s, w in weights.items()} if weights else style_guidance,
        "pieces": {"heldout": len(held.pieces), "train": len(train.pieces)},
    }
    sets = _block(rows[:samples], held.of_style(None), train.of_style(None), heldout_excerpts, train_excerpts,
                  np.random.default_rng([seed, 0]), vocab)
    result.update(compare_sets(*sets))

    result["player"] = None
    if player:
        if model.time_shifts:
            result["player_note"] = "the model writes TIME_SHIFT tokens: the instrument cannot play it"
        else:
            walked = walk_rows(model, params, jax.random.fold_in(key, 1), walks or samples, events, temperature,
                               top_p, window, seed)
            sets = _block(walked, held.of_style(None), train.of_style(None), heldout_excerpts, train_excerpts,
                          np.random.default_rng([seed, 1]), vocab)
            result["player"] = compare_sets(*sets)

    result["per_style"] = None if styles == "none" else {}
    if style_note:
        result["per_style_note"] = style_note
    for j, style in enumerate(style_ids):
        mine = rows[(j + 1) * samples:(j + 2) * samples]
        style_held, style_train = held.of_style(style), train.of_style(style)
        sample_set, held_set, train_set = _block(mine, style_held, style_train, heldout_excerpts, train_excerpts,
                                                 np.random.default_rng([seed, 2, style]), vocab)
        result["per_style"][STYLES[style]] = compare_style(sample_set, held_set, train_set, len(style_held),
                                                           len(style_train))
    return rounded(result)
