"""Parse a music21 corpus file for a test without music21's pickle cache.

By default music21 keeps a parsed score as a pickle in one folder shared by
every process (/tmp/music21). Two pytest workers parsing the same work at
once can read each other's half-written pickle, and a truncated one stays
there for every later run: the CI at edf0788 lost 68 tests to
"zlib.error: incomplete or truncated stream". The data path already parses
with forceSource and storePickle off; so do the tests.
"""

from __future__ import annotations

import os
from typing import Any


def parse_score(path: str | os.PathLike) -> Any:
    """A music21 stream from a corpus file, parsed from the source itself."""
    from music21 import converter

    return converter.parseFile(str(path), forceSource=True, storePickle=False)
