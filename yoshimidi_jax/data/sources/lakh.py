"""The Lakh MIDI dataset (Raffel 2016): download lmd_full.tar.gz (~1.6 GB,
~178k MIDI files) with resume and retries, extract it safely, list the files.

    lakh_source("data/raw/lakh")  # -> SourceFiles of data/raw/lakh/lmd_full/**.mid
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import tarfile
import time
import urllib.error
import urllib.request

import tqdm

from yoshimidi_jax.files import write_atomic
from yoshimidi_jax.data.sources.base import SourceFiles
from yoshimidi_jax.data.sources.folder import list_midi_files

DEFAULT_URL = "http://hog.ee.columbia.edu/craffel/lmd/lmd_full.tar.gz"
DEFAULT_MD5: str | None = None  # not pinned: pass expected_md5 to check it
ARCHIVE_NAME = "lmd_full.tar.gz"
EXTRACT_DIR_NAME = "lmd_full"
PART_SUFFIX = ".part"
MARKER_NAME = ".yoshimidi_extracted.json"
USER_AGENT = "yoshimidi-jax/0.1 (+urllib)"
RETRYABLE_HTTP_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 60.0


class DownloadError(RuntimeError):
    """A download failed for good (HTTP error, retries exhausted, bad size)."""


class ChecksumError(DownloadError):
    """The downloaded file does not have the expected md5."""


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the extraction folder."""


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying."""


# --- small pure helpers ------------------------------------------------------


def parse_content_range(value: str) -> tuple[int | None, int | None, int | None]:
    """'bytes 10-99/100' -> (10, 99, 100); 'bytes */100' -> (None, None, 100);
    a '*' total -> None. Raises ValueError on anything else."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value or "")
    if not m:
        raise ValueError(f"unparseable Content-Range: {value!r}")
    start, end, total = m.groups()
    return (
        int(start) if start is not None else None,
        int(end) if end is not None else None,
        int(total) if total != "*" else None,
    )


def backoff_seconds(attempt: int, base_s: float) -> float:
    """Exponential backoff: base, 2*base, 4*base, ... capped at MAX_BACKOFF_S."""
    return min(base_s * (2 ** max(attempt - 1, 0)), MAX_BACKOFF_S)


def file_md5(path: str, chunk_bytes: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            h.update(chunk)
    return h.hexdigest()


def _size(path: str) -> int:
    """Size of `path` in bytes, 0 if it does not exist."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _remove(path: str) -> None:
    """Delete a file if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    """The response's Content-Length, or None if absent / not a number."""
    value = resp.headers.get("Content-Length")
    return int(value) if value is not None and value.strip().isdigit() else None


# --- download ----------------------------------------------------------------


def _open(url: str, offset: int, timeout_s: float) -> http.client.HTTPResponse:
    """GET `url`, asking for bytes from `offset` on if offset > 0."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)


def _plan_write(url: str, resp: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """From the response status and headers: (where writing starts in the
    .part file, total size of the whole file or None if unknown)."""
    if resp.status == 206:
        start, _end, total = parse_content_range(resp.headers.get("Content-Range", ""))
        if start != offset:
            raise ValueError(f"asked for bytes from {offset}, server sent Content-Range starting at {start}")
        return offset, total
    if resp.status == 200:  # no Range sent, or the server ignored it: start over
        return 0, _content_length(resp)
    raise DownloadError(f"GET {url}: unexpected HTTP status {resp.status} {resp.reason}")


def _fetch_once(url: str, part: str, timeout_s: float, chunk_bytes: int, progress: bool) -> int | None:
    """One GET, appending to (or restarting) `part`. Returns the total size of
    the file if the server said it. Raises _Retry on a transient failure,
    DownloadError on a permanent one."""
    offset = _size(part)
    try:
        resp = _open(url, offset, timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416:  # the .part is already as long as (or longer than) the file
            _s, _e, total = parse_content_range(e.headers.get("Content-Range", "bytes */*"))
            if total is not None and total == offset:
                return total
            _remove(part)
            raise _Retry(f"HTTP 416 with {offset} bytes on disk, file is {total} bytes; restarting") from e
        if e.code in RETRYABLE_HTTP_STATUS:
            raise _Retry(f"HTTP {e.code} {e.reason}") from e
        raise DownloadError(f"GET {url}: HTTP {e.code} {e.reason}") from e
    except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets
        raise _Retry(f"connection failed: {e!r}") from e
    with resp:
        try:
            start, total = _plan_write(url, resp, offset)
        except ValueError as e:  # a Content-Range we cannot append with: start over
            _remove(part)
            raise _Retry(f"{e}; restarting from 0") from e
        body_len = _content_length(resp)
        got = 0
        with open(part, "ab" if start > 0 else "wb") as f, tqdm.tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=os.path.basename(part), disable=not progress,
        ) as bar:
            try:
                for chunk in iter(lambda: resp.read(chunk_bytes), b""):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:
                raise _Retry(f"connection lost after {start + got} bytes: {e!r}") from e
            finally:
                f.flush()
                os.fsync(f.fileno())
        if body_len is not None and got < body_len:
            raise _Retry(f"short read: expected {body_len} bytes in this response, got {got}")
    return total


def _verify(url: str, part: str, dest: str, total: int | None, expected_md5: str | None) -> None:
    """Check the finished .part file against the announced size and the md5;
    on mismatch delete it and raise."""
    size = _size(part)
    if total is not None and size != total:
        _remove(part)
        raise DownloadError(f"GET {url}: expected {total} bytes, got {size}; deleted {part}")
    if expected_md5 is not None:
        got_md5 = file_md5(part)
        if got_md5.lower() != expected_md5.lower():
            _remove(part)
            raise ChecksumError(
                f"GET {url}: md5 mismatch for {dest}: expected {expected_md5}, got {got_md5} "
                f"({size} bytes); deleted the download"
            )


def download(
    url: str,
    dest: str,
    expected_md5: str | None = None,
    progress: bool = True,
    chunk_bytes: int = 1 << 20,
    timeout_s: float = 60,
    retries: int = 5,
    backoff_s: float = 1.0,
) -> str:
    """Download `url` to `dest`, resumably; returns `dest`.

    Data goes to `dest + ".part"`; an existing .part is resumed with an HTTP
    Range request (a server that ignores Range and answers 200 makes it start
    over). Connection errors, timeouts, short reads and 5xx/429 answers are
    retried up to `retries` times in a row without progress, with exponential
    backoff from `backoff_s`. The result is checked against the size the server
    announced (Content-Length / Content-Range total) and `expected_md5` if
    given; on mismatch the download is deleted and DownloadError (ChecksumError
    for md5) is raised. Finally .part is renamed to `dest` atomically, so an
    existing `dest` is always complete: it is returned as is (md5-checked if
    `expected_md5` is given).
    """
    if os.path.exists(dest):
        if expected_md5 is not None and file_md5(dest).lower() != expected_md5.lower():
            raise ChecksumError(f"{dest} exists but its md5 is not {expected_md5}; delete it to download again")
        return dest
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + PART_SUFFIX
    failures = 0
    while True:
        before = _size(part)
        try:
            total = _fetch_once(url, part, timeout_s, chunk_bytes, progress)
            break
        except _Retry as e:
            failures = 0 if _size(part) > before else failures + 1
            if failures > retries:
                raise DownloadError(
                    f"GET {url}: giving up after {retries} retries without progress; "
                    f"{_size(part)} bytes in {part}; last error: {e}"
                ) from e
            time.sleep(backoff_seconds(failures, backoff_s))
    _verify(url, part, dest, total, expected_md5)
    os.replace(part, dest)
    return dest


# --- extract -----------------------------------------------------------------


def is_extracted(out_dir: str) -> bool:
    """True if `extract` finished into `out_dir` (its marker file exists)."""
    return os.path.isfile(os.path.join(out_dir, MARKER_NAME))


def _write_marker(out_dir: str, archive: str, members: int) -> None:
    """Write the completion marker atomically."""
    info = {"archive": os.path.abspath(archive), "archive_bytes": _size(archive), "members": members}
    write_atomic(os.path.join(out_dir, MARKER_NAME), json.dumps(info))


def _refuse_absolute(member: tarfile.TarInfo) -> None:
    """Raise for an absolute member path (the "data" filter would quietly
    strip the leading '/'; an archive that has one is not what we expect)."""
    if member.name.startswith(("/", os.sep)) or os.path.isabs(member.name):
        raise tarfile.AbsolutePathError(member)


def extract(archive: str, out_dir: str, progress: bool = True) -> str:
    """Extract a .tar.gz into `out_dir` and return `out_dir`.

    Uses tarfile's "data" filter: members with absolute paths, '..', links
    pointing outside `out_dir`, or device files raise UnsafeArchiveError
    (naming the member). A marker file is written when every member is out,
    so a second call returns at once; without the marker (an interrupted run)
    extraction is done again, overwriting what is there.
    """
    if is_extracted(out_dir):
        return out_dir
    if not hasattr(tarfile, "data_filter"):
        raise RuntimeError("safe extraction needs tarfile filters (Python >= 3.11.4 / 3.12)")
    if not os.path.isfile(archive):
        raise FileNotFoundError(f"archive not found: {archive!r}")
    os.makedirs(out_dir, exist_ok=True)
    members = 0
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar, tqdm.tqdm(
        total=_size(archive), unit="B", unit_scale=True, unit_divisor=1024,
        desc=f"extract {os.path.basename(archive)}", disable=not progress,
    ) as bar:
        for member in tar:
            try:
                _refuse_absolute(member)
                tar.extract(member, out_dir, filter="data")
            except tarfile.FilterError as e:
                raise UnsafeArchiveError(f"{archive}: refusing member {member.name!r}: {e}") from e
            members += 1
            bar.update(raw.tell() - bar.n)
    _write_marker(out_dir, archive, members)
    return out_dir


# --- the source --------------------------------------------------------------


def lakh_source(
    root: str,
    url: str = DEFAULT_URL,
    expected_md5: str | None = DEFAULT_MD5,
    progress: bool = True,
) -> SourceFiles:
    """Lakh MIDI (lmd_full) under `root`: download `root/lmd_full.tar.gz` unless
    already done, extract into `root/lmd_full` unless already done, and list
    the MIDI files there. Once extracted, the archive is not needed again (it
    may be deleted) and nothing is downloaded."""
    out_dir = os.path.join(root, EXTRACT_DIR_NAME)
    if not is_extracted(out_dir):
        archive = download(url, os.path.join(root, ARCHIVE_NAME), expected_md5=expected_md5, progress=progress)
        extract(archive, out_dir, progress=progress)
    return list_midi_files(out_dir)
