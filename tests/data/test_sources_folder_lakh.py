"""Folder and Lakh sources: listing, and download/extract against a real local
HTTP server (Range support, a connection cut half way, a server that ignores
Range, 404, bad md5) and real tar.gz archives of real MIDI files."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import os
import random
import re
import socket
import tarfile
import threading
import types

import mido
import pytest

from yoshimidi_jax.data.sources import lakh
from yoshimidi_jax.data.sources.base import SourceFiles
from yoshimidi_jax.data.sources.folder import list_midi_files

# --- helpers -----------------------------------------------------------------


def write_midi(path: str, pitches: list[int]) -> bytes:
    """Write a one-track MIDI file with one quarter note per pitch; return its bytes."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    for p in pitches:
        track.append(mido.Message("note_on", note=p, velocity=80, time=0))
        track.append(mido.Message("note_off", note=p, velocity=0, time=480))
    track.append(mido.MetaMessage("end_of_track", time=0))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mid.save(path)
    with open(path, "rb") as f:
        return f.read()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


MIDI_MEMBERS = {
    "lmd_full/0/0a1b.mid": [60, 62, 64],
    "lmd_full/0/0c2d.mid": [48, 52, 55, 60],
    "lmd_full/f/f00d.mid": [72, 71, 69, 67, 65],
}


@pytest.fixture
def archive(tmp_path) -> types.SimpleNamespace:
    """A lmd_full-like tar.gz: three real MIDI files, a README and ~20 KB of
    incompressible noise (so the archive is big enough to cut in half)."""
    src = tmp_path / "src"
    midi_bytes = {name: write_midi(str(src / name), pitches) for name, pitches in MIDI_MEMBERS.items()}
    (src / "lmd_full" / "README.txt").write_text("not midi\n")
    (src / "lmd_full" / "noise.bin").write_bytes(random.Random(0).randbytes(20_000))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(str(src / "lmd_full"), arcname="lmd_full")
    data = buf.getvalue()
    return types.SimpleNamespace(data=data, md5=md5(data), midi=midi_bytes)


@dataclasses.dataclass
class ServerState:
    requests: list = dataclasses.field(default_factory=list)  # (path, Range header or None)
    cut_after: int | None = None  # close the socket after this many body bytes...
    cut_every: bool = False  # ...on the first request only, or on every request
    ignore_range: bool = False  # always answer 200 with the whole file


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler serving files from `directory`, plus single
    byte ranges (206 + Content-Range, 416), and fault injection from the
    server's ServerState."""

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state: ServerState = self.server.state
        range_header = self.headers.get("Range")
        state.requests.append((self.path, range_header))
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404, "File not found")
            return
        with open(path, "rb") as f:
            data = f.read()
        total = len(data)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
        if m and not state.ignore_range:
            start = int(m[1])
            end = min(int(m[2]) if m[2] else total - 1, total - 1)
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = state.cut_after if (state.cut_every or len(state.requests) == 1) else None
        if cut is not None and cut < len(body):
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # a real cut connection
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path, archive):
    """A ThreadingHTTPServer on 127.0.0.1 serving /lmd_full.tar.gz."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "lmd_full.tar.gz").write_bytes(archive.data)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(served)))
    httpd.state = ServerState()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield types.SimpleNamespace(base=base, url=f"{base}/lmd_full.tar.gz", state=httpd.state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def fast_download(url: str, dest: str, **kw) -> str:
    kw = {"progress": False, "chunk_bytes": 1024, "timeout_s": 5, "backoff_s": 0.0, **kw}
    return lakh.download(url, dest, **kw)


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# --- folder ------------------------------------------------------------------


def touch(path) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"MThd")


def test_folder_recursive_extension_filter_and_sorted(tmp_path):
    root = tmp_path / "midi"
    # created in non-sorted order on purpose
    names = ["z.mid", "sub/deep/c.kar", "a.MID", "sub/b.midi", "sub/g.Mid", "m/x.KAR"]
    ignored = ["d.txt", "e.mid.bak", "fmid", "sub/h.mi", "sub/deep/readme.md"]
    for n in names + ignored:
        touch(root / n)
    out = list_midi_files(str(root))
    assert isinstance(out, SourceFiles)
    assert out.paths == tuple(sorted(str(root / n) for n in names))
    assert list(out.paths) == sorted(out.paths)
    assert out.failed == ()
    assert list_midi_files(str(root)) == out  # stable


def test_folder_missing_raises_naming_it(tmp_path):
    missing = str(tmp_path / "no_such_folder")
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        list_midi_files(missing)


def test_folder_without_midi_raises_naming_it(tmp_path):
    root = tmp_path / "empty_one"
    touch(root / "notes.txt")
    with pytest.raises(ValueError, match="empty_one"):
        list_midi_files(str(root))


def test_folder_is_a_file_raises(tmp_path):
    touch(tmp_path / "f.mid")
    with pytest.raises(NotADirectoryError, match="f.mid"):
        list_midi_files(str(tmp_path / "f.mid"))


def test_folder_follows_symlinks_safely(tmp_path, monkeypatch):
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(root / "a.mid")
    touch(outside / "x.mid")
    os.symlink(outside, root / "linked")  # followed
    os.symlink(root, root / "loop")  # a cycle: must not recurse
    os.symlink(root, root / "loop2")  # (two cycles: 2**40 folders until ELOOP)
    visited = []
    real_walk = os.walk

    def counting_walk(*args, **kwargs):
        for item in real_walk(*args, **kwargs):
            visited.append(item[0])
            assert len(visited) < 50, "symlink loop is being walked"
            yield item

    monkeypatch.setattr(os, "walk", counting_walk)
    os.symlink(root / "a.mid", root / "b_same_as_a.mid")  # second path to a file
    os.symlink(tmp_path / "nowhere.mid", root / "broken.mid")
    out = list_midi_files(str(root))
    assert out.paths == (str(root / "a.mid"), str(root / "linked" / "x.mid"))
    assert out.failures_by_reason == {"duplicate_file": 1, "unreadable_file": 1}
    assert {f["path"] for f in out.failed} == {str(root / "b_same_as_a.mid"), str(root / "broken.mid")}
    assert len(visited) <= 4, visited  # root, linked, and the two loop links pruned at once


# --- download ----------------------------------------------------------------


def test_download_full(server, archive, tmp_path):
    dest = tmp_path / "dl" / "lmd_full.tar.gz"
    assert fast_download(server.url, str(dest), expected_md5=archive.md5) == str(dest)
    assert read(dest) == archive.data
    assert not os.path.exists(str(dest) + ".part")
    assert server.state.requests == [("/lmd_full.tar.gz", None)]


def test_download_resumes_after_cut_connection(server, archive, tmp_path):
    half = len(archive.data) // 2
    server.state.cut_after = half
    dest = tmp_path / "lmd_full.tar.gz"
    fast_download(server.url, str(dest), expected_md5=archive.md5)
    assert md5(read(dest)) == archive.md5
    reqs = server.state.requests
    assert len(reqs) == 2, reqs
    assert reqs[0][1] is None
    m = re.fullmatch(r"bytes=(\d+)-", reqs[1][1] or "")
    assert m, f"second request did not resume with Range: {reqs[1]}"
    assert 0 < int(m[1]) <= half


def test_download_server_ignoring_range_restarts(server, archive, tmp_path):
    server.state.cut_after = len(archive.data) // 2
    server.state.ignore_range = True
    dest = tmp_path / "lmd_full.tar.gz"
    fast_download(server.url, str(dest))  # no md5: the size check and content must hold
    assert read(dest) == archive.data
    reqs = server.state.requests
    assert len(reqs) == 2 and reqs[1][1] is not None  # asked for a range, got a 200


def test_download_wrong_md5_raises_and_leaves_nothing(server, archive, tmp_path):
    dest = tmp_path / "lmd_full.tar.gz"
    with pytest.raises(lakh.ChecksumError, match=f"md5.*expected {'0' * 32}, got {archive.md5}"):
        fast_download(server.url, str(dest), expected_md5="0" * 32)
    assert not dest.exists()
    assert not os.path.exists(str(dest) + ".part")


def test_download_404_names_url_and_status(server, tmp_path):
    url = f"{server.base}/missing.tar.gz"
    with pytest.raises(lakh.DownloadError, match=re.escape(url) + ".*404"):
        fast_download(url, str(tmp_path / "x.tar.gz"))
    assert len(server.state.requests) == 1  # a 404 is not retried
    assert not (tmp_path / "x.tar.gz").exists()


def test_download_gives_up_after_retries_without_progress(server, archive, tmp_path):
    server.state.cut_after = 0
    server.state.cut_every = True
    expected = re.escape(server.url) + f".*expected {len(archive.data)} bytes.*got 0"
    with pytest.raises(lakh.DownloadError, match=expected):
        fast_download(server.url, str(tmp_path / "x.tar.gz"), retries=2)
    assert len(server.state.requests) == 3  # first try + 2 retries


def test_download_existing_dest_is_not_fetched(server, archive, tmp_path):
    dest = tmp_path / "lmd_full.tar.gz"
    dest.write_bytes(archive.data)
    fast_download(server.url, str(dest), expected_md5=archive.md5)
    assert server.state.requests == []


def test_download_resumes_existing_part_file(server, archive, tmp_path):
    dest = tmp_path / "lmd_full.tar.gz"
    (tmp_path / "lmd_full.tar.gz.part").write_bytes(archive.data[:1000])
    fast_download(server.url, str(dest), expected_md5=archive.md5)
    assert server.state.requests == [("/lmd_full.tar.gz", "bytes=1000-")]
    assert read(dest) == archive.data


def test_parse_content_range():
    assert lakh.parse_content_range("bytes 10-99/100") == (10, 99, 100)
    assert lakh.parse_content_range("bytes */100") == (None, None, 100)
    assert lakh.parse_content_range("bytes 0-9/*") == (0, 9, None)
    with pytest.raises(ValueError):
        lakh.parse_content_range("items 0-9/10")


# --- extract -----------------------------------------------------------------


def write_archive(path, archive) -> str:
    path.write_bytes(archive.data)
    return str(path)


def test_extract_and_marker_skips_rerun(archive, tmp_path):
    tgz = write_archive(tmp_path / "a.tar.gz", archive)
    out = tmp_path / "out"
    assert lakh.extract(tgz, str(out), progress=False) == str(out)
    for name, data in archive.midi.items():
        assert read(out / name) == data
    assert lakh.is_extracted(str(out))
    os.remove(out / "lmd_full/0/0a1b.mid")
    lakh.extract(tgz, str(out), progress=False)  # marker present: nothing done
    assert not (out / "lmd_full/0/0a1b.mid").exists()


def test_extract_without_marker_is_redone(archive, tmp_path):
    tgz = write_archive(tmp_path / "a.tar.gz", archive)
    out = tmp_path / "out"
    (out / "lmd_full" / "0").mkdir(parents=True)
    (out / "lmd_full/0/0a1b.mid").write_bytes(b"half written")  # an interrupted run
    lakh.extract(tgz, str(out), progress=False)
    assert read(out / "lmd_full/0/0a1b.mid") == archive.midi["lmd_full/0/0a1b.mid"]
    assert lakh.is_extracted(str(out))


def evil_tar(path, kind: str) -> str:
    with tarfile.open(str(path), "w:gz") as tar:
        ok = tarfile.TarInfo("lmd_full/ok.mid")
        ok.size = 4
        tar.addfile(ok, io.BytesIO(b"MThd"))
        if kind == "symlink":
            info = tarfile.TarInfo("lmd_full/link.mid")
            info.type = tarfile.SYMTYPE
            info.linkname = "../../evil.mid"
            tar.addfile(info)
        else:
            info = tarfile.TarInfo({"dotdot": "../evil.mid", "absolute": "/tmp/yoshimidi_evil.mid"}[kind])
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return str(path)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_extract_refuses_escaping_members(tmp_path, kind):
    tgz = evil_tar(tmp_path / "evil.tar.gz", kind)
    out = tmp_path / "sub" / "out"
    with pytest.raises(lakh.UnsafeArchiveError, match="refusing member"):
        lakh.extract(tgz, str(out), progress=False)
    assert not (tmp_path / "sub" / "evil.mid").exists()
    assert not (tmp_path / "evil.mid").exists()
    assert not os.path.lexists(out / "lmd_full" / "link.mid")
    assert not lakh.is_extracted(str(out))


# --- lakh_source -------------------------------------------------------------


def test_lakh_source_end_to_end_and_no_second_download(server, archive, tmp_path):
    root = tmp_path / "lakh"
    out = lakh.lakh_source(str(root), url=server.url, expected_md5=archive.md5, progress=True)
    expected = tuple(sorted(str(root / "lmd_full" / name) for name in MIDI_MEMBERS))
    assert out.paths == expected
    assert out.failed == ()
    for path in out.paths:  # real, readable MIDI files
        assert len(mido.MidiFile(path).tracks[0]) > 2
    assert len(server.state.requests) == 1
    assert lakh.lakh_source(str(root), url=server.url, progress=False) == out
    os.remove(root / "lmd_full.tar.gz")  # once extracted the archive is not needed
    assert lakh.lakh_source(str(root), url=server.url, progress=False) == out
    assert len(server.state.requests) == 1


def test_lakh_source_resumes_cut_download(server, archive, tmp_path, monkeypatch):
    monkeypatch.setattr(lakh, "backoff_seconds", lambda attempt, base_s: 0.0)
    server.state.cut_after = len(archive.data) // 3
    out = lakh.lakh_source(str(tmp_path / "lakh"), url=server.url, expected_md5=archive.md5, progress=False)
    assert len(out.paths) == len(MIDI_MEMBERS)
    assert len(server.state.requests) == 2 and server.state.requests[1][1].startswith("bytes=")
