"""Many players at once: the presses and releases of every session that waits
at the same moment, decoded as one batch.

The decode state of every session lives in one pool on the device (a
DecodeState whose leaves have a leading slot axis: KV caches [slots, 1, L,
H, D], indices [slots]...). A batch gathers the rows of its sessions, runs
play.make_press_row under jax.vmap (each row feeds its own forced tokens and
samples its own number of notes, at its own cache index, with its own
temperature, top-p and strictness), and scatters the rows back, all in one
jitted call with the pool donated. A slot's style (tokens/styles.py) is a
leaf of its DecodeState (`style`, [slots, 1]): set when the slot opens, it
rides along every gather, scatter and refill of the row. Row count and forced length are padded to
a few bucket sizes (padding rows use a scratch slot), so a server compiles
a handful of shapes once, at warm-up.

    bp = BatchPlayer(model, params, num_slots=64)
    bp.open(0, jax.random.key(0)); bp.open(1, jax.random.key(1), style=style_id("fiddle"))
    notes = bp.run([PressJob(0, Press(0.0, 90, 1), settings), PressJob(1, Press(0.0, 60, 3), settings)])
    bp.release(0, 0.2, notes[0].pitches)        # host only: fed with slot 0's next press

Zero-wait keys: a JoinJob adds keys to the slot's open press, one more
NOTE_ON each ([VELOCITY if its bin changes] NOTE_ON: no TIME, no CONTROL),
as Player.join does; where no press is open (a release's TIME is pending or
was fed since, or nothing was played) or it has no room above, its Press is
played as a new press. A join is a row like any press (the same row
function: 0 or 1 forced tokens, then its notes), so it batches with them.

A release needs no answer, so its tokens (TIME NOTE_OFF..) wait on the host
and are fed as the first forced tokens of the session's next press: one
decode row per press, none per release, and the model sees exactly the
tokens it would have seen had they been fed at once. The same holds for a
press's last NOTE_ON: nothing of the press needs what follows it, so it is
sampled, answered and left unstepped (make_press_row feed_last=False;
`unfed`), and goes first into the session's next row (press, join or
flush): a press of one key costs one decode call of its forced tokens and
one sampling before its answer, not two calls. The host's tokens
(SessionHost.ids) count it from its press on; a refill prefills the tokens
before it and leaves it unfed.

The tokens are exactly those of play.Player (same row function, same token
layout), so a session played here and one played with Player from the same
key agree (tested) until the first cache refill: the unfed note stays out of
a refill's window, so the kept half starts one token earlier than Player's.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Union

import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.model import Transformer
from yoshimidi_jax.play.host import SessionHost
from yoshimidi_jax.play.press import (MAX_NOTES, PlaySettings, Press, PressNotes, check_number, join_tokens,
                                      make_press_row, press_tokens, release_tokens, require_continuous_time)
from yoshimidi_jax.sample.sampler import prefill, window_start
from yoshimidi_jax.sample.tracker import init_track
from yoshimidi_jax.tokens import BOS
from yoshimidi_jax.tokens.styles import NO_STYLE, check_style

ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# a press feeds [the pending releases: TIME OFF..] TIME CONTROL [OFF of re-struck keys] [VELOCITY]
FORCED_BUCKETS = (8, 32)
MAX_PENDING = 12  # release tokens kept for the next press; beyond, they are fed at once (a FlushJob)
_NOTHING = (np.zeros(0, np.int32), np.zeros(0, np.float32))  # no pending tokens


@dataclasses.dataclass(frozen=True)
class OpenJob:
    """(Re)starts a slot with an empty context, in a style (tokens/styles.py;
    NO_STYLE: none) that the session keeps until it opens again."""

    slot: int
    key: jax.Array
    style: int = NO_STYLE


@dataclasses.dataclass(frozen=True)
class PressJob:
    slot: int
    press: Press
    settings: PlaySettings = PlaySettings()
    ending: tuple[int, ...] = ()  # pitches to end at the press's moment first (keys struck again)


@dataclasses.dataclass(frozen=True)
class JoinJob:
    """press.num_keys more keys join the slot's open press (at press.velocity);
    where none is open (a TIME since: a release) or it has no room above, or
    a key struck again must end first (`ending`: no NOTE_OFF inside a press),
    `press` is played as a new press (PressJob). PressNotes.joined says which."""

    slot: int
    press: Press
    settings: PlaySettings = PlaySettings()
    ending: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class FlushJob:
    """Feeds a slot's pending release tokens now (BatchPlayer.release asks for it)."""

    slot: int


Job = Union[PressJob, JoinJob, FlushJob]


@dataclasses.dataclass(frozen=True)
class _Row:
    """One job's row of a batch: the tokens to force (None: nothing to do),
    the keys to sample, and the host state it leaves behind."""

    ids: np.ndarray | None
    times: np.ndarray | None
    num_keys: int = 0
    settings: PlaySettings | None = None
    vel_bin: int = -1
    ending: tuple = ()
    joined: bool = False  # the notes join the open press


def bucket(n: int, sizes) -> int:
    for size in sizes:
        if n <= size:
            return size
    raise ValueError(f"{n} is more than the largest bucket {sizes[-1]}")


class BatchPlayer:
    def __init__(self, model: Transformer, params: Any, num_slots: int, cache_len: int | None = None):
        if num_slots < 1:
            raise ValueError(f"num_slots={num_slots} must be >= 1")
        require_continuous_time(model)
        self.model, self.params = model, params
        self.num_slots = num_slots
        self.scratch = num_slots  # the padding rows' slot
        self.cache_len = int(cache_len or model.max_len)
        self.row_buckets = tuple(b for b in ROW_BUCKETS if b < num_slots) + (num_slots,)
        self.programs = _programs(model, self.cache_len)  # jitted once per (model, cache_len): players share
        # the pool: every leaf of one row's DecodeState, for num_slots + 1 rows (the last: scratch), zeros
        # until a slot opens; no decode runs here (the reset below is the first program a session needs)
        self._row_shape = jax.eval_shape(self.programs.start_row, params, jax.random.key(0), NO_STYLE)
        self.pool = self.programs.reset(self.params, self._empty_pool(), jnp.int32(self.scratch),
                                        jax.random.key(0), jnp.int32(NO_STYLE))
        self.host: list[SessionHost | None] = [None] * num_slots
        # per slot: release tokens (TIME OFF..) not fed yet; its next press feeds them first
        self.pending: list[tuple[np.ndarray, np.ndarray]] = [_NOTHING] * num_slots
        # per slot: the last NOTE_ON of its last press or join, answered but not stepped (None: none)
        self.unfed: list[int | None] = [None] * num_slots
        self.generation = [0] * num_slots  # bumped by each open: a refill begun before it is stale
        self.refills_in_batch = 0  # refills that ran inside run() (the Batcher refills outside it)
        self.last_pitch_range: tuple[int, int] | None = None  # the pitch range of the last batch decoded
        self._shapes_run: dict[tuple[int, int], set[tuple[int, int]]] = {}  # pitch range -> (rows, width) run

    def _batch_fn(self, pitch_range: tuple[int, int]):
        return self.programs.batch_fn(pitch_range)

    def _empty_pool(self):
        """A pool of num_slots + 1 rows shaped as one row's DecodeState: zeros
        (PRNG keys: key(0)) until a reset writes a row."""
        def leaf(x):
            shape = (self.num_slots + 1, *x.shape)
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                return jnp.broadcast_to(jax.random.key(0), shape)
            return jnp.zeros(shape, x.dtype)
        return jax.tree.map(leaf, self._row_shape)

    @property
    def kv_bytes_per_slot(self) -> int:
        cache = self.pool.cache
        return sum(int(x.nbytes) for x in jax.tree.leaves(cache)) // (self.num_slots + 1)

    # -- sessions --------------------------------------------------------------
    def open(self, slot: int, key: jax.Array, style: int = NO_STYLE) -> None:
        """(Re)starts a slot: an empty context (BOS) with its own PRNG key, in
        `style` (tokens/styles.style_id; NO_STYLE: none) until it opens again."""
        self._check_slot(slot)
        style = check_style(style, self.model.num_styles)
        self.pool = self.programs.reset(self.params, self.pool, jnp.int32(slot), key, jnp.int32(style))
        self.host[slot] = SessionHost.start(keep_history=False)  # a server records notes, not tokens
        self.pending[slot] = _NOTHING
        self.unfed[slot] = None
        self.generation[slot] += 1

    def style(self, slot: int) -> int:
        """The style slot `slot` plays in (NO_STYLE: none)."""
        self._check_slot(slot)
        return int(self.pool.style[slot, 0])

    def close(self, slot: int) -> None:
        self._check_slot(slot)
        self.host[slot] = None
        self.pending[slot] = _NOTHING
        self.unfed[slot] = None
        self.generation[slot] += 1

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self.num_slots:
            raise ValueError(f"slot {slot} is not in [0, {self.num_slots})")

    def _open_host(self, slot: int) -> SessionHost:
        host = self.host[slot]
        if host is None:
            raise ValueError(f"slot {slot} is not open")
        return host

    def _fed(self, slot: int) -> SessionHost:
        """The slot's host as its cache holds it: without the unfed note. A
        refill prefills the recent half of these (the device Track, which a
        refill carries over, has not seen the unfed note either), and the
        unfed note stays unfed, to go first into the next row."""
        host = self.host[slot]
        if self.unfed[slot] is None:
            return host
        return dataclasses.replace(host, ids=host.ids[:-1], times=host.times[:-1])

    def _with_unfed(self, slot: int, host: SessionHost) -> SessionHost:
        """A refilled host (`_fed`'s window) with the slot's unfed note back at its end."""
        if self.unfed[slot] is None:
            return host
        return dataclasses.replace(host, ids=np.append(host.ids, np.int32(self.unfed[slot])),
                                   times=np.append(host.times, np.float32(0.0)))

    def _room(self, slot: int, needed: int) -> bool:
        """Refills slot's cache now if `needed` more tokens would not fit -> whether it did."""
        host = self._fed(slot).refilled(needed + (self.unfed[slot] is not None), self.cache_len)
        if host is None:
            return False
        p = self.programs
        row = p.refill_row(self.params, p.get_row(self.pool, jnp.int32(slot)), host.ids[None], host.times[None])
        self.pool = p.set_row(self.pool, jnp.int32(slot), row)
        self.host[slot] = self._with_unfed(slot, host)
        return True

    def release(self, slot: int, dt_s: float, pitches) -> bool:
        """Ends the given notes (those sounding) dt_s after the previous event;
        host only. True when the pending tokens should be fed now (submit a
        FlushJob for the slot)."""
        check_number("dt_s", dt_s, 0.0, 3600.0, integer=False)
        host = self._open_host(slot)
        ending = host.ending(pitches)
        if not ending:
            return False
        ids, times = release_tokens(dt_s, ending, self.model)
        pending_ids, pending_times = self.pending[slot]
        self.pending[slot] = (np.concatenate([pending_ids, ids]), np.concatenate([pending_times, times]))
        self.host[slot] = host.ended(ending)
        return len(self.pending[slot][0]) > MAX_PENDING

    def refill_ahead(self, slots) -> list[int]:
        """Refills, now, the caches of `slots` that the largest next job might
        not fit -> the slots refilled. (The server's Batcher refills in its
        own thread instead: refill_begin / refill_compute / refill_end.)"""
        done = []
        for slot in slots:
            if self.needs_room(slot):
                self._room(slot, self.cache_len)
                done.append(slot)
        return done

    # -- refills outside the batch: begin (decode thread), compute (any thread), end (decode thread)
    def needs_room(self, slot: int, ahead: int = 0) -> bool:
        """Whether the largest next job of `slot` (and `ahead` more tokens)
        might not fit its cache: run() would refill it first."""
        host = self.host[slot]
        return host is not None and len(host.ids) + JOB_TOKENS + ahead > self.cache_len

    def refill_begin(self, slot: int) -> Refill:
        """A refill of slot's cache to do: its row and the recent half of its
        tokens. Nothing of the slot may run until refill_end."""
        host = self._open_host(slot)
        window = self._fed(slot).refilled(self.cache_len, self.cache_len)  # always a window: the recent half
        row = self.programs.get_row(self.pool, jnp.int32(slot))
        return Refill(slot, self.generation[slot], host.ids, row, window.ids, window.times)

    def refill_compute(self, refill: Refill) -> Refill:
        """The refill's prefill (pure: touches neither the pool nor the hosts,
        so any thread may run it while batches of other slots go on)."""
        row = self.programs.refill_row(self.params, refill.row, refill.ids[None], refill.times[None])
        return dataclasses.replace(refill, row=jax.block_until_ready(row))

    def refill_end(self, refill: Refill) -> bool:
        """Puts a computed refill in place -> False (nothing done) if its slot
        was opened, closed or fed since refill_begin."""
        host = self.host[refill.slot]
        if self.generation[refill.slot] != refill.generation or host is None or host.ids is not refill.source_ids:
            return False
        self.pool = self.programs.set_row(self.pool, jnp.int32(refill.slot), refill.row)
        self.host[refill.slot] = self._with_unfed(refill.slot, dataclasses.replace(host, ids=refill.ids,
                                                                                   times=refill.times))
        return True

    # -- one batch ---------------------------------------------------------------
    def run(self, jobs: list[Job]) -> list[PressNotes | None]:
        """Decodes every job at once (at most one job per slot) -> per job, its
        notes (a PressJob) or None (a FlushJob). Each press samples in the pitch
        range of its settings: jobs of different ranges are decoded as one
        batch per range."""
        if not jobs:
            return []
        slots = [j.slot for j in jobs]
        if len(set(slots)) != len(slots):
            raise ValueError(f"one job per slot in a batch: slots {slots}")
        rows: list[_Row] = []
        for job in jobs:
            host = self._open_host(job.slot)
            pending_ids, pending_times = self.pending[job.slot]
            if isinstance(job, (PressJob, JoinJob)):
                ending = tuple(sorted(set(job.ending) & host.sounding))
                if (isinstance(job, JoinJob) and not len(pending_ids) and not ending
                        and host.can_join(job.press.num_keys, job.settings.pitch_hi)):
                    ids, times, vel_bin = join_tokens(job.press.velocity, host.vel_bin, self.model)
                    rows.append(_Row(ids, times, job.press.num_keys, job.settings, vel_bin, joined=True))
                    continue
                ids, times, vel_bin = press_tokens(job.press, host.vel_bin, self.model, ending)
                rows.append(_Row(np.concatenate([pending_ids, ids]), np.concatenate([pending_times, times]),
                                 job.press.num_keys, job.settings, vel_bin, ending))
            elif len(pending_ids) or self.unfed[job.slot] is not None:
                rows.append(_Row(pending_ids, pending_times, vel_bin=host.vel_bin))
            else:
                rows.append(_Row(None, None, vel_bin=host.vel_bin))
        pitches = np.full((len(jobs), MAX_NOTES), -1, np.int32)
        for pitch_range, live in self._by_pitch_range(rows).items():
            pitches[live] = self._decode(pitch_range, [jobs[i].slot for i in live], [rows[i] for i in live])
        results: list[PressNotes | None] = []
        for i, job in enumerate(jobs):
            row, host = rows[i], self.host[job.slot]
            if row.ids is None:
                results.append(None)
                continue
            self.pending[job.slot] = _NOTHING
            self.unfed[job.slot] = None
            if isinstance(job, (PressJob, JoinJob)):  # its last note waits for the next row
                self.unfed[job.slot] = int(pitches[i, row.num_keys - 1]) + self.model.vocab.note_on
            if row.joined:
                played = pitches[i, :row.num_keys]
                self.host[job.slot] = host.joined(row.ids, row.times, played, row.vel_bin, self.model.vocab)
                results.append(PressNotes(played, int(job.press.velocity), host.open_control or job.press.control,
                                          joined=True))
            elif isinstance(job, (PressJob, JoinJob)):
                played = pitches[i, :row.num_keys]
                self.host[job.slot] = host.ended(row.ending).pressed(row.ids, row.times, played, row.vel_bin,
                                                                     self.model.vocab)
                results.append(PressNotes(played, int(job.press.velocity), job.press.control))
            else:
                self.host[job.slot] = host.fed(row.ids, row.times)
                results.append(None)
        return results

    def _by_pitch_range(self, rows: list[_Row]) -> dict[tuple[int, int], list[int]]:
        """The rows with tokens to feed, by the pitch range of their settings,
        in job order. A flush samples no note: its rows join the first range
        (or one already compiled)."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, row in enumerate(rows):
            if row.settings is not None:
                groups.setdefault((row.settings.pitch_lo, row.settings.pitch_hi), []).append(i)
        flushes = [i for i, row in enumerate(rows) if row.ids is not None and row.settings is None]
        if flushes:
            default = PlaySettings()
            first = next(iter(groups), next(iter(self.programs.batch_fns), (default.pitch_lo, default.pitch_hi)))
            groups[first] = sorted(groups.get(first, []) + flushes)
        return groups

    def _decode(self, pitch_range: tuple[int, int], slots: list[int], rows: list[_Row]) -> np.ndarray:
        """One jitted call for rows of one pitch range -> their pitches [rows, MAX_NOTES]."""
        n_rows = bucket(len(rows), self.row_buckets)
        width = bucket(max(len(row.ids) + (self.unfed[slot] is not None) for slot, row in zip(slots, rows)),
                       FORCED_BUCKETS)
        for slot in slots:  # the padded forced tokens and every note step must fit the cache
            self.refills_in_batch += self._room(slot, width + MAX_NOTES + 1)
        # each row's unfed note first
        rows = [row if self.unfed[slot] is None else dataclasses.replace(
            row, ids=np.concatenate([[self.unfed[slot]], row.ids]).astype(np.int32),
            times=np.concatenate([[0.0], row.times]).astype(np.float32)) for slot, row in zip(slots, rows)]
        b_slots = np.full(n_rows, self.scratch, np.int32)
        b_ids = np.zeros((n_rows, 1, width), np.int32)
        b_times = np.zeros((n_rows, 1, width), np.float32)
        b_n = np.zeros(n_rows, np.int32)
        b_keys = np.zeros(n_rows, np.int32)
        b_temp = np.ones(n_rows, np.float32)
        b_top_p = np.ones(n_rows, np.float32)
        b_strict = np.zeros(n_rows, bool)
        for r, (slot, row) in enumerate(zip(slots, rows)):
            b_slots[r], b_n[r], b_keys[r] = slot, len(row.ids), row.num_keys
            b_ids[r, 0, : len(row.ids)], b_times[r, 0, : len(row.ids)] = row.ids, row.times
            if row.settings is not None:
                b_temp[r], b_top_p[r], b_strict[r] = row.settings.temperature, row.settings.top_p, row.settings.strict
        out, self.pool = self._batch_fn(pitch_range)(self.params, self.pool, b_slots, b_ids, b_times, b_n, b_keys,
                                                     jnp.int32(b_keys.max()), b_temp, b_top_p, b_strict)
        self.last_pitch_range = pitch_range
        self._shapes_run.setdefault(pitch_range, set()).add((n_rows, width))
        return np.asarray(out)[: len(rows)]

    def keep_warm(self) -> bool:
        """Runs the smallest batch program run so far in the last pitch range
        decoded (so nothing compiles here), on the scratch slot alone (its row
        is the padding rows', its notes are thrown away; no session's state
        changes) -> whether it ran (False before any batch).
        Between a lone player's presses the CPU's caches lose the weights: a
        press 200 ms after the last costs ~2.5x one right after it
        (benchmarks/RESULTS.md); a call every few ms keeps them."""
        if self.last_pitch_range is None:
            return False
        # the smallest shape this player ran (compiled, then): never a compile on the decode thread
        n_rows, width = min(self._shapes_run[self.last_pitch_range], key=lambda shape: shape[0] * shape[1])
        # one note sampled on the scratch row (the press's sampling warms too), none stepped
        args = _idle_batch_args(np.full(n_rows, self.scratch, np.int32), width, num_keys=1)
        out, self.pool = self._batch_fn(self.last_pitch_range)(self.params, self.pool, *args)
        jax.block_until_ready(out)
        return True

    def warmup_shapes(self) -> list[tuple[int, int]]:
        """Every (rows, forced length) a batch may take, smallest first."""
        return [(n_rows, width) for n_rows in self.row_buckets for width in FORCED_BUCKETS]

    def warmup(self, settings: PlaySettings = PlaySettings(), shapes=None, refill: bool = True) -> None:
        """Compiles (by running them once) the batch shapes `shapes` (None:
        every one) in the pitch range of `settings` (the sessions'), the reset
        and, with `refill`, the refill. Runs on a pool of its own, so another
        thread may warm up while this player serves: the programs it compiles
        are the players' shared ones (_programs)."""
        slot, p = 0, self.programs
        batch = p.batch_fn((settings.pitch_lo, settings.pitch_hi))
        pool = self._empty_pool()
        pool = p.reset(self.params, pool, jnp.int32(slot), jax.random.key(0), jnp.int32(NO_STYLE))
        for n_rows, width in self.warmup_shapes() if shapes is None else shapes:
            b_slots = np.full(n_rows, self.scratch, np.int32)
            b_slots[0] = slot
            _, pool = batch(self.params, pool, *_idle_batch_args(b_slots, width, num_keys=0))
        if refill:
            half = self.cache_len // 2
            ids, times = np.zeros((1, half), np.int32), np.zeros((1, half), np.float32)
            ids[0, 0] = BOS
            pool = p.set_row(pool, jnp.int32(slot), p.refill_row(self.params, p.get_row(pool, jnp.int32(slot)),
                                                                  ids, times))
        jax.block_until_ready(pool)


def _idle_batch_args(slots: np.ndarray, width: int, num_keys: int) -> tuple:
    """A batch program's arguments after (params, pool) for rows that feed
    nothing (forced width `width`) and sample num_keys notes each, at
    temperature 1 and top-p 1, not strict: warm-up and keep-warm calls."""
    n_rows = len(slots)
    zeros = np.zeros((n_rows, 1, width))
    return (slots, zeros.astype(np.int32), zeros.astype(np.float32), np.zeros(n_rows, np.int32),
            np.full(n_rows, num_keys, np.int32), jnp.int32(1), np.ones(n_rows, np.float32),
            np.ones(n_rows, np.float32), np.zeros(n_rows, bool))


JOB_TOKENS = FORCED_BUCKETS[-1] + MAX_NOTES + 1  # the most tokens one job may add to a cache


@dataclasses.dataclass(frozen=True)
class Refill:
    """A cache refill under way (BatchPlayer.refill_begin -> refill_compute -> refill_end)."""

    slot: int
    generation: int  # the slot's generation at refill_begin
    source_ids: np.ndarray  # the host's tokens it was begun from (the slot must not be fed meanwhile)
    row: Any  # the slot's DecodeState row: as it was, then refilled
    ids: np.ndarray  # the recent half of the tokens, prefilled into the fresh cache
    times: np.ndarray


@dataclasses.dataclass
class _Programs:
    """The jitted programs of one (model, cache_len), shared by every
    BatchPlayer of them, so a second decode thread's player traces nothing."""

    model: Transformer
    start_row: Any
    reset: Any
    get_row: Any
    refill_row: Any
    set_row: Any
    batch_fns: dict

    def batch_fn(self, pitch_range: tuple[int, int]):
        """One jitted batch per pitch range (a PlaySettings' pitch_lo, pitch_hi);
        temperature, top-p and strictness are traced, per row."""
        if pitch_range not in self.batch_fns:
            lo, hi = pitch_range
            row = make_press_row(self.model, PlaySettings(pitch_lo=lo, pitch_hi=hi).constraints, feed_last=False)
            vrow = jax.vmap(row, in_axes=(None, 0, 0, 0, 0, 0, None, 0, 0, 0))

            def batch(params, pool, slots, ids, times, n_forced, num_keys, max_keys, temperature, top_p, strict):
                rows = jax.tree.map(lambda x: x[slots], pool)
                pitches, rows = vrow(params, rows, ids, times, n_forced, num_keys, max_keys, temperature, top_p,
                                     strict)
                return pitches, jax.tree.map(lambda x, y: x.at[slots].set(y), pool, rows)

            self.batch_fns[pitch_range] = jax.jit(batch, donate_argnums=(1,))
        return self.batch_fns[pitch_range]


_PROGRAMS: dict[tuple[int, int], _Programs] = {}  # (id(model), cache_len) -> programs (which hold the model)
_PROGRAMS_LOCK = threading.Lock()


def _programs(model: Transformer, cache_len: int) -> _Programs:
    with _PROGRAMS_LOCK:
        key = (id(model), cache_len)
        if key not in _PROGRAMS:
            _PROGRAMS[key] = _make_programs(model, cache_len)
        return _PROGRAMS[key]


def _make_programs(model: Transformer, cache_len: int) -> _Programs:
    def start_row(params, key, style):
        ids = jnp.full((1, 1), BOS, jnp.int32)
        return prefill(model, params, ids, jnp.zeros((1, 1)), init_track(1), key, cache_len,
                       jnp.full((1,), style, jnp.int32))

    def reset_row(params, pool, slot, key, style):
        return jax.tree.map(lambda x, y: x.at[slot].set(y), pool, start_row(params, key, style))

    def get_row(pool, slot):
        return jax.tree.map(lambda x: x[slot], pool)

    def refill_row(params, row, ids, times):
        # its Track, PRNG key and style carry over; what sounds where the kept tokens begin
        start = window_start(ids, times, row.track, model.vocab)
        return prefill(model, params, ids, times, row.track, row.key, cache_len, row.style, start)

    def set_row(pool, slot, row):
        return jax.tree.map(lambda x, y: x.at[slot].set(y), pool, row)

    return _Programs(model, start_row, jax.jit(reset_row, donate_argnums=(1,)), jax.jit(get_row),
                     jax.jit(refill_row), jax.jit(set_row, donate_argnums=(0,)), {})
