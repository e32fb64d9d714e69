"""A vectorised n-gram language model over token ids: the baseline to beat.

Interpolated modified Kneser-Ney (Chen & Goodman 1998, as in KenLM), down to a
uniform distribution over the vocabulary, so every token has nonzero
probability and p(. | context) sums to 1 over the vocabulary for every context.

* Each piece (BOS ... EOS) is its own stream: contexts never cross pieces. A
  piece is left-padded with n-1 copies of a reserved start symbol
  ``START = vocab_size`` (never predicted), so early positions see a short,
  distinguishable context. Position 0 (BOS) is given, not predicted.
* An n-gram is an int64 key, its tokens as digits in base ``vocab_size + 1``;
  count tables are sorted key arrays searched with ``np.searchsorted``.
  No Python loop per token: loops run over orders (and, to pad, over pieces).
* Highest order: raw counts. Lower orders: continuation counts (the number of
  distinct left extensions), except n-grams starting with START, which keep
  raw counts (they have no left extension), as KenLM does with <s>.
* Discounts D1, D2, D3+ per order from count-of-counts; where those are
  degenerate (tiny or deterministic data) the order falls back to plain
  Kneser-Ney with D = 0.75.

    p_k(w | h) = (c(hw) - D(c(hw))^+ + gamma(h) * p_{k-1}(w | h')) / c(h)
    gamma(h)   = D1 N1(h.) + D2 N2(h.) + D3 N3+(h.),    p_0(w) = 1 / vocab_size

and p_k = p_{k-1} where the context h was never seen at order k.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

PLAIN_KN_DISCOUNT = 0.75


@dataclasses.dataclass(frozen=True, eq=False)
class NgramModel:
    """Count tables for orders 1..n (index k-1 holds order k).

    keys[k-1]: sorted unique int64 keys of the k-grams seen (base vocab_size+1);
    counts[k-1]: their (raw at order n, else continuation) counts;
    ctx_keys[k-1]: sorted unique keys of their (k-1)-token contexts (key // base);
    ctx_total[k-1]: c(h), sum of counts over the context's k-grams;
    ctx_gamma[k-1]: D1 N1(h.) + D2 N2(h.) + D3 N3+(h.);
    discounts[k-1]: (0, D1, D2, D3+), indexed by min(count, 3).
    """

    n: int
    vocab_size: int
    keys: tuple[np.ndarray, ...]
    counts: tuple[np.ndarray, ...]
    ctx_keys: tuple[np.ndarray, ...]
    ctx_total: tuple[np.ndarray, ...]
    ctx_gamma: tuple[np.ndarray, ...]
    discounts: tuple[np.ndarray, ...]

    @property
    def base(self) -> int:
        return self.vocab_size + 1

    @property
    def start(self) -> int:
        """The reserved start symbol that pads the front of every piece."""
        return self.vocab_size


def _check(n: int, vocab_size: int) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    if (vocab_size + 1) ** n >= 2**63:
        raise ValueError(f"(vocab_size + 1) ** n must fit in int64: vocab_size={vocab_size}, n={n}")


def _ngram_keys(pieces: Sequence[np.ndarray], n: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the n-gram ending at every predicted position (1..len-1) of every
    piece, in order, and the number of predicted positions per piece."""
    base, start = vocab_size + 1, vocab_size
    arrays = [np.asarray(p).reshape(-1).astype(np.int64, copy=False) for p in pieces]
    lengths = np.array([a.size for a in arrays], dtype=np.int64)
    num_pred = np.maximum(lengths - 1, 0)
    if num_pred.sum() == 0:
        return np.zeros(0, np.int64), num_pred
    tokens = np.concatenate(arrays)
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}); got [{tokens.min()}, {tokens.max()}]")
    pad = np.full(n - 1, start, np.int64)
    flat = np.concatenate([x for a in arrays for x in (pad, a)])
    # flat index of each piece's first real token, then of its predicted positions
    first = np.cumsum(lengths + (n - 1)) - lengths
    piece_of = np.repeat(np.arange(len(arrays)), num_pred)
    within = np.arange(num_pred.sum()) - np.repeat(np.cumsum(num_pred) - num_pred, num_pred)
    target = first[piece_of] + 1 + within
    keys = np.zeros(target.size, np.int64)
    for m in range(n):  # tokens target-(n-1) .. target, most significant first
        keys = keys * base + flat[target - (n - 1) + m]
    return keys, num_pred


def _discounts(counts: np.ndarray) -> np.ndarray:
    """(0, D1, D2, D3+) from count-of-counts (Chen & Goodman), else plain KN."""
    nc = np.bincount(np.minimum(counts, 5), minlength=6)[1:5].astype(np.float64)
    plain = np.array([0.0, PLAIN_KN_DISCOUNT, PLAIN_KN_DISCOUNT, PLAIN_KN_DISCOUNT])
    if np.any(nc == 0):
        return plain
    y = nc[0] / (nc[0] + 2 * nc[1])
    d = np.array([0.0, 1 - 2 * y * nc[1] / nc[0], 2 - 3 * y * nc[2] / nc[1], 3 - 4 * y * nc[3] / nc[2]])
    if not (np.all(np.isfinite(d)) and np.all(d[1:] > 0) and np.all(d[1:] <= np.array([1.0, 2.0, 3.0]))):
        return plain
    return d


def fit_ngram(pieces: Sequence[np.ndarray], n: int, vocab_size: int) -> NgramModel:
    """Counts every order 1..n over the predicted positions of the pieces."""
    _check(n, vocab_size)
    base, start = vocab_size + 1, vocab_size
    top_keys, _ = _ngram_keys(pieces, n, vocab_size)
    keys_k, counts_k = np.unique(top_keys, return_counts=True)
    counts_k = counts_k.astype(np.int64)
    by_order: list[tuple[np.ndarray, np.ndarray]] = [(keys_k, counts_k)]
    for k in range(n - 1, 0, -1):  # order k from the k+1 table: drop the first token
        suffix = keys_k % base**k
        low_keys, inverse = np.unique(suffix, return_inverse=True)
        num_ext = np.bincount(inverse, minlength=low_keys.size).astype(np.int64)
        sum_ext = np.bincount(inverse, weights=counts_k, minlength=low_keys.size).astype(np.int64)
        starts_with_start = (low_keys // base ** (k - 1)) == start
        keys_k, counts_k = low_keys, np.where(starts_with_start, sum_ext, num_ext)
        by_order.append((keys_k, counts_k))
    by_order.reverse()

    tables: dict[str, list[np.ndarray]] = {f: [] for f in ("ctx_keys", "ctx_total", "ctx_gamma", "discounts")}
    for keys_k, counts_k in by_order:
        d = _discounts(counts_k)
        ctx = keys_k // base  # sorted, since keys are
        if ctx.size:
            first = np.flatnonzero(np.concatenate([[True], ctx[1:] != ctx[:-1]]))
            total = np.add.reduceat(counts_k, first)
            gamma = np.add.reduceat(d[np.minimum(counts_k, 3)], first)
        else:  # no training data
            first, total, gamma = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        ctx_keys = ctx[first]
        tables["ctx_keys"].append(ctx_keys)
        tables["ctx_total"].append(total.astype(np.int64))
        tables["ctx_gamma"].append(gamma.astype(np.float64))
        tables["discounts"].append(d)
    return NgramModel(
        n=n,
        vocab_size=vocab_size,
        keys=tuple(k for k, _ in by_order),
        counts=tuple(c for _, c in by_order),
        ctx_keys=tuple(tables["ctx_keys"]),
        ctx_total=tuple(tables["ctx_total"]),
        ctx_gamma=tuple(tables["ctx_gamma"]),
        discounts=tuple(tables["discounts"]),
    )


def _lookup(sorted_keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, found) of each query in a sorted unique key array."""
    if sorted_keys.size == 0:
        return np.zeros(queries.shape, np.int64), np.zeros(queries.shape, bool)
    idx = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    return idx, sorted_keys[idx] == queries


def _log_probs_of_keys(model: NgramModel, keys: np.ndarray) -> np.ndarray:
    """Natural-log p(last token | the rest) for full-order n-gram keys."""
    base = model.base
    p = np.full(keys.shape, 1.0 / model.vocab_size)
    for k in range(1, model.n + 1):
        query = keys % base**k
        if model.keys[k - 1].size == 0:  # nothing seen (no training data)
            continue
        ci, cfound = _lookup(model.ctx_keys[k - 1], query // base)
        ki, kfound = _lookup(model.keys[k - 1], query)
        c = np.where(kfound, model.counts[k - 1][ki], 0)
        d = model.discounts[k - 1][np.minimum(c, 3)]
        total = np.where(cfound, model.ctx_total[k - 1][ci], 1)
        interp = (np.maximum(c - d, 0.0) + model.ctx_gamma[k - 1][ci] * p) / total
        p = np.where(cfound, interp, p)
    return np.log(p)


def log_probs(model: NgramModel, pieces: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per piece, float64 log p of tokens 1..len-1 given up to n-1 previous
    tokens of the same piece (an empty array for a piece of length <= 1)."""
    keys, num_pred = _ngram_keys(pieces, model.n, model.vocab_size)
    lp = _log_probs_of_keys(model, keys)
    return np.split(lp, np.cumsum(num_pred)[:-1]) if len(num_pred) else []


def next_token_log_probs(model: NgramModel, history: Sequence[int]) -> np.ndarray:
    """log p(v | history) for every v in the vocabulary, shape (vocab_size,).

    history: the tokens before v in the same piece (BOS first); only the last
    n-1 count, and a shorter history is padded with the start symbol."""
    hist = np.asarray(history, np.int64).reshape(-1)
    hist = hist[hist.size - min(hist.size, model.n - 1) :]
    if hist.size and (hist.min() < 0 or hist.max() >= model.vocab_size):
        raise ValueError("history token ids must lie in [0, vocab_size)")
    ctx = np.concatenate([np.full(model.n - 1 - hist.size, model.start, np.int64), hist])
    key = 0
    for t in ctx:  # at most n-1 tokens
        key = key * model.base + int(t)
    keys = key * model.base + np.arange(model.vocab_size, dtype=np.int64)
    return _log_probs_of_keys(model, keys)


def nats_per_token(
    model: NgramModel, pieces: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None
) -> float:
    """Mean -log p over predicted positions.

    weights: optional, one array per piece, boolean (or float) of length
    len(piece) - 1 (aligned with log_probs) or len(piece) (aligned with the
    tokens; entry 0, the given BOS, is ignored). The mean is weighted by it."""
    lps = log_probs(model, pieces)
    nll = -np.concatenate(lps) if lps else np.zeros(0)
    if weights is None:
        if nll.size == 0:
            raise ValueError("no predicted positions")
        return float(nll.mean())
    if len(weights) != len(pieces):
        raise ValueError(f"{len(weights)} weight arrays for {len(pieces)} pieces")
    ws = []
    for w, lp in zip(weights, lps, strict=True):  # a loop over pieces, not tokens
        w = np.asarray(w, np.float64).reshape(-1)
        if w.size == lp.size + 1:
            w = w[1:]
        if w.size != lp.size:
            raise ValueError(f"weights of length {w.size} for a piece with {lp.size} predicted positions")
        ws.append(w)
    w = np.concatenate(ws) if ws else np.zeros(0)
    if w.sum() <= 0:
        raise ValueError("weights select no predicted positions")
    return float((w * nll).sum() / w.sum())


def best_ngram(
    train_pieces: Sequence[np.ndarray],
    eval_pieces: Sequence[np.ndarray],
    vocab_size: int,
    orders: Sequence[int] = (1, 2, 3, 4, 5),
) -> tuple[int, float, dict[int, float]]:
    """Fits each order on train, scores eval: (best n, its nats/token, {n: nats/token})."""
    scores = {n: nats_per_token(fit_ngram(train_pieces, n, vocab_size), eval_pieces) for n in orders}
    best = min(scores, key=scores.__getitem__)
    return best, scores[best], scores
