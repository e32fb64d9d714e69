"""One piece per array_record record, in a small binary layout:

    b"YMJ2" | piece hash u64 | n u32 | style i8 | ids u16[n] | times f32[number of TIME ids]

(b"YMJ1" records, written before styles, have no style byte: they read as NO_STYLE.)

Times are stored only for TIME positions (the rest are 0), which keeps a
record at about 2.4 bytes per token.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct

import numpy as np

from yoshimidi_jax.tokens.encode import TokenSequence
from yoshimidi_jax.tokens.styles import NO_STYLE
from yoshimidi_jax.tokens.vocab import TIME

MAGIC = b"YMJ2"
MAGIC_V1 = b"YMJ1"
_HEADER = struct.Struct("<4sQI")
_STYLE = struct.Struct("<b")


@dataclasses.dataclass(frozen=True)
class PieceRecord:
    piece_hash: int  # content hash of the token sequence: the split key
    tokens: TokenSequence
    style: int = NO_STYLE  # tokens/styles.py: the collection's texture, NO_STYLE if not known


def content_hash(tokens: TokenSequence) -> int:
    """A stable 64-bit hash of a piece's tokens (same music -> same hash)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.ascontiguousarray(tokens.ids, dtype=np.uint16).tobytes())
    h.update(np.ascontiguousarray(tokens.times[tokens.ids == TIME], dtype=np.float32).tobytes())
    return int.from_bytes(h.digest(), "little")


def serialize(record: PieceRecord) -> bytes:
    ids = np.ascontiguousarray(record.tokens.ids, dtype=np.uint16)
    times = np.ascontiguousarray(record.tokens.times[record.tokens.ids == TIME], dtype=np.float32)
    return (_HEADER.pack(MAGIC, record.piece_hash, ids.shape[0]) + _STYLE.pack(record.style) + ids.tobytes()
            + times.tobytes())


def deserialize(data: bytes) -> PieceRecord:
    magic, piece_hash, n = _HEADER.unpack_from(data, 0)
    if magic not in (MAGIC, MAGIC_V1):
        raise ValueError(f"not a YoshiMIDI record: magic {magic!r}, expected {MAGIC!r}")
    offset, style = _HEADER.size, NO_STYLE
    if magic == MAGIC:
        (style,) = _STYLE.unpack_from(data, offset)
        offset += _STYLE.size
    ids = np.frombuffer(data, dtype=np.uint16, count=n, offset=offset).astype(np.int32)
    is_time = ids == TIME
    times = np.zeros(n, np.float32)
    times[is_time] = np.frombuffer(data, dtype=np.float32, count=int(is_time.sum()), offset=offset + 2 * n)
    return PieceRecord(piece_hash=piece_hash, tokens=TokenSequence(ids=ids, times=times), style=style)
