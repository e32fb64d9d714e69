"""Adherence: the share of presses whose decoded notes satisfy the controls
they were given, scored on the notes (not the tokens) with the one definition
of a press (tokens/presses.py); and measuring it for a trained model.

Measuring control adherence of a trained model: controls to aim at, the
conditions they are sampled under, and the scores.

Free sampling (the grammar mask only; the model's own rhythm) with per-press
controls inserted where the model starts a press, scored on the decoded notes:
  heldout        controls of held-out pieces (the eval split, with the
                 training's velocity augmentation at a fixed seed)
  player         player-like press scripts (play/walk.py)
  chance         the held-out targets scored on unconditioned samples
  chance_player  the player targets scored on unconditioned samples
  strict         player targets with strict masks (1.0 by construction)
  player_press   the player-like scripts played through the instrument's API
                 (play.Player: the player's rhythm, each press released
                 before the next), each chord sent as one press whose
                 control asks its size
  player_zero_wait  the same scripts played key by key (zero-wait keys):
                 each press's first key is a press that grows (its control
                 asks chord ANY), each further key joins it (Player.join: one
                 more NOTE_ON of the same press); scored against the whole
                 press's control, so `chord` is the share of presses that end
                 with as many notes as keys
  player_zero_wait_strict  the same with strict masks
`agreement`: the mean probability the model gave the strict mask's choices
where the mask narrowed them (before masking). Every condition samples on a
piano (pitches 21..108); an interval with no room there is counted in
`infeasible`, not scored. benchmarks/adherence.py is the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from yoshimidi_jax.data.augment import augment_velocity
from yoshimidi_jax.eval.splits import split_records
from yoshimidi_jax.midi import NoteEvents
from yoshimidi_jax.model import Transformer
from yoshimidi_jax.play.player import Player
from yoshimidi_jax.play.press import PlaySettings, Press
from yoshimidi_jax.play.walk import ScriptedPress, player_walk
from yoshimidi_jax.sample.constraints import Constraints
from yoshimidi_jax.sample.sampler import generate, to_events
from yoshimidi_jax.tokens import decode, encode
from yoshimidi_jax.tokens.controls import Control, annotate
from yoshimidi_jax.tokens.presses import ANY_CHORD, ANY_INTERVAL, ANY_VELOCITY, attributes_of_notes, interval_bounds

ATTRIBUTES = ("interval", "chord", "velocity")


@dataclasses.dataclass(frozen=True)
class AdherenceCounts:
    hits: dict  # attribute (and "all") -> presses that satisfy it
    given: dict  # attribute (and "all") -> presses that were given it
    infeasible: int = 0  # intervals with no room on the keyboard (not in `given`)

    def __add__(self, other: "AdherenceCounts") -> "AdherenceCounts":
        return AdherenceCounts({k: self.hits[k] + other.hits[k] for k in self.hits},
                               {k: self.given[k] + other.given[k] for k in self.given},
                               self.infeasible + other.infeasible)

    @staticmethod
    def zero() -> "AdherenceCounts":
        keys = ATTRIBUTES + ("all",)
        return AdherenceCounts(dict.fromkeys(keys, 0), dict.fromkeys(keys, 0))

    def rates(self) -> dict:
        return {k: round(self.hits[k] / self.given[k], 4) if self.given[k] else None for k in self.hits}


def score(
    events: NoteEvents, controls: Sequence[Control], complete: bool = True, pitch_range: tuple[int, int] = (0, 127)
) -> AdherenceCounts:
    """The k-th press of `events` against the k-th control. complete=False: the
    last press may have been cut off by the end of sampling and is not scored.
    An interval that has no room in pitch_range from the previous press's
    reference note (asked to go down from the lowest key, or up to the top
    key with a chord asked, whose other notes go above it) is counted as
    infeasible, not scored."""
    attrs = attributes_of_notes(events.onset_s, events.pitch, events.velocity)
    n = min(len(attrs.onset_s) - (0 if complete else 1), len(controls))
    out = AdherenceCounts.zero()
    if n <= 0:
        return out
    want = np.array([[c.interval, c.chord, c.velocity] for c in controls[:n]]).reshape(n, 3)
    got = np.stack([attrs.interval[:n], attrs.chord[:n], attrs.velocity[:n]], axis=1)
    given = want != np.array([ANY_INTERVAL, ANY_CHORD, ANY_VELOCITY])
    prev = np.append(-1, attrs.reference_pitch[: n - 1])
    bounds = np.array([interval_bounds(int(c)) if c < ANY_INTERVAL else (-127, 127) for c in want[:, 0]])
    # a chord of n goes up from its lowest note: that note needs n - 1 keys above it
    above = np.where(want[:, 1] != ANY_CHORD, want[:, 1], 0)
    room = (prev + bounds[:, 1] >= pitch_range[0]) & (prev + bounds[:, 0] <= pitch_range[1] - above)
    infeasible = given[:, 0] & (prev >= 0) & ~room
    given[:, 0] &= ~infeasible
    hit = (want == got) & given
    hits = {a: int(hit[:, i].sum()) for i, a in enumerate(ATTRIBUTES)}
    gives = {a: int(given[:, i].sum()) for i, a in enumerate(ATTRIBUTES)}
    scored = given.any(axis=1)
    hits["all"] = int((scored & (hit | ~given).all(axis=1)).sum())
    gives["all"] = int(scored.sum())
    return AdherenceCounts(hits, gives, int(infeasible.sum()))


PIANO = (21, 108)  # the pitch range every condition samples in
CONDITIONS = ("heldout", "player", "chance", "chance_player", "strict")
PLAYED = {"player_press": (False, False), "player_zero_wait": (True, False), "player_zero_wait_strict": (True, True)}
ALL_CONDITIONS = CONDITIONS + tuple(PLAYED)  # PLAYED: through the instrument's API (play_scripts)


def heldout_controls(data_dir: str, rows: int, per_row: int, seed: int) -> list[list[Control]]:
    """Consecutive presses' controls from held-out pieces, one piece per row."""
    rng = np.random.default_rng(seed)
    out = []
    for i, record in enumerate(split_records(data_dir, "eval")):
        tokens = record.tokens
        events = augment_velocity(decode(tokens.ids, tokens.times), np.random.default_rng([seed, i]))
        seq = encode(events)
        c = annotate(seq.ids, seq.times)
        if len(c.position) < per_row + 1:
            continue
        start = int(rng.integers(0, len(c.position) - per_row))
        out.append([Control(int(a), int(b), int(v)) for a, b, v in
                    zip(c.interval[start:start + per_row], c.chord[start:start + per_row],
                        c.velocity[start:start + per_row])])
        if len(out) == rows:
            break
    return out


def player_controls(rows: int, per_row: int, seed: int) -> list[list[Control]]:
    return [[p.control for p in player_walk(per_row, seed=seed * 1000 + r)] for r in range(rows)]


def run_condition(model: Transformer, params, targets: list[list[Control]], controlled: bool, strict: bool,
                  key: jax.Array, num_events: int, temperature: float, top_p: float):
    """Samples one row per target list -> (AdherenceCounts over all rows, agreement values)."""
    per_row = max(len(t) for t in targets)
    ctrl = np.full((len(targets), per_row), -1, np.int32)
    if controlled:
        for r, t in enumerate(targets):
            ctrl[r, : len(t)] = [c.id(model.vocab) for c in t]
    seqs, out = generate(
        model, params, key, num_events=num_events, batch=len(targets), temperature=temperature, top_p=top_p,
        controls=ctrl, constraints=Constraints(PIANO[0], PIANO[1], allow_eos=False, strict=strict),
    )
    total = AdherenceCounts.zero()
    for r, seq in enumerate(seqs):
        used = int(out.forced[r].sum()) if controlled else len(targets[r])
        total = total + score(to_events(seq, model.vocab), targets[r][:used], complete=False, pitch_range=PIANO)
    agreement = np.asarray(out.agreement)
    return total, agreement[agreement >= 0]


def play_scripts(model: Transformer, params, scripts: list[list[ScriptedPress]], *, zero_wait: bool, strict: bool,
                 key: jax.Array, temperature: float, top_p: float, player: Player | None = None) -> AdherenceCounts:
    """Plays each script as a session of the instrument (play.Player, on a
    piano): the player's rhythm (each press's notes released at 80% of the
    gap to the next press), its velocities and intervals; the model chooses
    the pitches. zero_wait: each press key by key (a press that grows, then
    a join per further key, lowest key first) instead of one press of its
    size. Scored on the decoded notes against each press's whole control."""
    player = player or Player(model, params)
    settings = PlaySettings(temperature=temperature, top_p=top_p, strict=strict, pitch_lo=PIANO[0], pitch_hi=PIANO[1])
    total = AdherenceCounts.zero()
    for script in scripts:
        key, sub = jax.random.split(key)
        state = player.start(sub)
        for k, sp in enumerate(script):
            dt = 0.0
            if k:
                state = player.release(state, 0.8 * sp.dt_s, sorted(state.host.sounding))
                dt = 0.2 * sp.dt_s
            if zero_wait:
                _, state = player.press(state, Press(dt, sp.velocity, 1, sp.interval, grows=True), settings)
                for _ in range(sp.num_keys - 1):
                    _, state = player.join(state, Press(0.0, sp.velocity, 1, sp.interval, grows=True), settings)
            else:
                _, state = player.press(state, Press(dt, sp.velocity, sp.num_keys, sp.interval), settings)
        ids, times = state.host.tokens()
        total = total + score(decode(ids, times, model.vocab), [sp.control for sp in script], complete=True,
                              pitch_range=PIANO)
    return total


def measure_adherence(model: Transformer, params, data_dir: str, *, presses: int = 800, batch: int = 16,
                      num_events: int = 0, temperature: float = 1.0, top_p: float = 0.95, seed: int = 0,
                      conditions: tuple[str, ...] = CONDITIONS) -> dict:
    """Each condition's adherence rates (interval/chord/velocity/all), scored
    presses and infeasible intervals, aiming at `presses` presses per
    condition; plus `agreement` when strict is among the conditions."""
    unknown = set(conditions) - set(ALL_CONDITIONS)
    if unknown:
        raise ValueError(f"unknown conditions {sorted(unknown)}: choose from {ALL_CONDITIONS}")
    num_events = num_events or model.max_len - 1
    per_row = num_events // 3  # more targets than a row can use: presses are >= 3 tokens
    rounds = -(-presses // (batch * num_events // 6))  # ~6 tokens per press in practice
    key = jax.random.key(seed)
    sums: dict[str, AdherenceCounts] = {}
    agreements = []
    played = [name for name in conditions if name in PLAYED]
    if played:  # the instrument's sessions: a script of ~presses / batch presses per session, `batch` sessions
        instrument = Player(model, params)
        scripts = [player_walk(max(1, -(-presses // batch)), seed=(seed + 7919) * 1000 + r) for r in range(batch)]
        for name in played:
            zero_wait, strict = PLAYED[name]
            key, sub = jax.random.split(key)
            sums[name] = play_scripts(model, params, scripts, zero_wait=zero_wait, strict=strict, key=sub,
                                      temperature=temperature, top_p=top_p, player=instrument)
    conditions = tuple(name for name in conditions if name not in PLAYED)
    for rnd in range(rounds if conditions else 0):
        held = heldout_controls(data_dir, batch, per_row, seed=seed + rnd) if {"heldout", "chance"} & set(
            conditions) else []
        player = player_controls(batch, per_row, seed=seed + rnd)
        setups = {"heldout": (held, True, False), "player": (player, True, False), "chance": (held, False, False),
                  "chance_player": (player, False, False), "strict": (player, True, True)}
        for name in conditions:
            targets, controlled, strict = setups[name]
            key, sub = jax.random.split(key)
            if not targets:
                raise ValueError(f"no held-out piece in {data_dir} has {per_row + 1} presses for condition {name!r}")
            counts, agree = run_condition(model, params, targets, controlled, strict, sub, num_events,
                                          temperature, top_p)
            sums[name] = sums.get(name, AdherenceCounts.zero()) + counts
            if strict:
                agreements.append(agree)
    result: dict = {"temperature": temperature, "top_p": top_p, "num_events": num_events}
    for name, counts in sums.items():
        result[f"adherence_{name}"] = counts.rates()
        result[f"presses_{name}"] = counts.given["all"]
        result[f"infeasible_{name}"] = counts.infeasible
    if "strict" in conditions:
        agree = np.concatenate(agreements) if agreements else np.zeros(0)
        result["agreement"] = round(float(agree.mean()), 4) if agree.size else None
        result["agreement_steps"] = int(agree.size)
    return result
