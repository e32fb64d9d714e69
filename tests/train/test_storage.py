"""WorkdirMirror against a real S3 server (moto, on 127.0.0.1, a free port)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil


from yoshimidi_jax import storage
from tests.train.conftest import _free_port, _reset_moto, _start, _stop  # noqa: F401  (s3 fixture helpers)
from yoshimidi_jax.storage import WorkdirMirror, is_remote, local_staging_dir, make_fs

FAST = dict(retry_initial_s=0.05, retry_max_s=0.5)


def _write(path, nbytes: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(os.urandom(nbytes))


def _make_run(local: str) -> None:
    """A workdir tree shaped like the training loop's (orbax step dirs, logs, samples)."""
    for step in (5, 10):
        d = os.path.join(local, "checkpoints", str(step))
        _write(os.path.join(d, "_CHECKPOINT_METADATA"), 100)
        _write(os.path.join(d, "commit_success.txt"), 10)
        _write(os.path.join(d, "default", "manifest.ocdbt"), 300)
        _write(os.path.join(d, "default", "ocdbt.process_0", "d", "abc123"), 70_000)
        _write(os.path.join(d, "default", "empty"), 0)
    _write(os.path.join(local, "config.json"), 200)
    _write(os.path.join(local, "metrics.jsonl"), 500)
    _write(os.path.join(local, "tb", "events.x"), 1000)
    _write(os.path.join(local, "samples", "step_10.mid"), 300)


def _tree(root: str) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _push_all(m: WorkdirMirror, steps=(5, 10)) -> None:
    for step in steps:
        m.push_checkpoint(step)
    m.push_files()


def test_round_trip(s3, tmp_path):
    local, other = str(tmp_path / "a"), str(tmp_path / "b")
    _make_run(local)
    remote = f"s3://{s3['bucket']}/runs/x"
    m = WorkdirMirror(remote, local, **FAST)
    _push_all(m)
    assert m.flush(timeout_s=30)
    assert m.pending == 0 and m.failures == 0 and m.last_error is None
    m.close()

    fs = make_fs(remote)
    assert fs.exists(f"{s3['bucket']}/runs/x/checkpoints/10.committed")
    assert fs.exists(f"{s3['bucket']}/runs/x/samples/step_10.mid")

    r = WorkdirMirror(remote, other, **FAST)
    assert r.restore_latest() == 10
    r.close()
    got, want = _tree(other), _tree(local)
    step10 = {k: v for k, v in want.items() if k.startswith(os.path.join("checkpoints", "10") + os.sep)}
    assert len(step10) == 5
    for k in list(step10) + ["config.json", "metrics.jsonl", os.path.join("tb", "events.x")]:
        assert got[k] == want[k], k
    # only the latest step comes back, no download leftovers
    assert os.listdir(os.path.join(other, "checkpoints")) == ["10"]
    assert not any(k.startswith("samples") for k in got)

    # a dir that already has a finished step is left as it is
    r2 = WorkdirMirror(remote, other, **FAST)
    assert r2.restore_latest() == 10
    r2.close()
    # nothing on the remote: None
    assert WorkdirMirror(f"s3://{s3['bucket']}/nothing", str(tmp_path / "c"), **FAST).restore_latest() is None


def test_half_uploaded_step_is_never_latest(s3, tmp_path):
    local = str(tmp_path / "a")
    _make_run(local)
    remote = f"s3://{s3['bucket']}/run"
    m = WorkdirMirror(remote, local, **FAST)
    _push_all(m)
    assert m.flush(timeout_s=30)
    m.close()
    # step 20's files, but no marker: an upload that died half-way
    fs = make_fs(remote)
    for rel in ("_CHECKPOINT_METADATA", "default/manifest.ocdbt"):
        fs.pipe_file(f"{s3['bucket']}/run/checkpoints/20/{rel}", b"partial")
    # a marker whose step lost a file is not used either
    fs.pipe_file(f"{s3['bucket']}/run/checkpoints/30/_CHECKPOINT_METADATA", b"x")
    fs.pipe_file(f"{s3['bucket']}/run/checkpoints/30.committed",
                 b'{"step": 30, "files": {"_CHECKPOINT_METADATA": 1, "default/gone": 5}}')
    # nor one whose files are not the sizes its marker lists (overwritten, truncated)
    fs.pipe_file(f"{s3['bucket']}/run/checkpoints/40/_CHECKPOINT_METADATA", b"x")
    fs.pipe_file(f"{s3['bucket']}/run/checkpoints/40.committed",
                 b'{"step": 40, "files": {"_CHECKPOINT_METADATA": 999}}')

    other = str(tmp_path / "b")
    r = WorkdirMirror(remote, other, **FAST)
    assert r.restore_latest() == 10
    r.close()
    assert sorted(os.listdir(os.path.join(other, "checkpoints"))) == ["10"]


def test_s3_outage_mid_run(s3, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=storage.__name__)
    local = str(tmp_path / "a")
    _make_run(local)
    _write(os.path.join(local, "checkpoints", "15", "default", "d", "data"), 50_000)
    _write(os.path.join(local, "checkpoints", "15", "_CHECKPOINT_METADATA"), 100)
    remote = f"s3://{s3['bucket']}/run"
    m = WorkdirMirror(remote, local, **FAST)
    _push_all(m)
    assert m.flush(timeout_s=30)

    _stop(s3["srv"])
    s3["srv"] = None
    before = _tree(local)
    m.push_checkpoint(15)
    _write(os.path.join(local, "metrics.jsonl"), 800)  # the run goes on writing
    m.push_files()
    m.push_files()  # coalesced with the one still queued
    assert m.flush(timeout_s=2) is False
    assert m.failures > 0 and m.pending == 2
    # the loop's next checkpoint (logs, then the step): these logs are a new upload behind the step, not
    # coalesced with the one ahead of it, which has already run when the step's marker goes up
    m.push_files()  # coalesced: still last in the queue
    m.push_checkpoint(15)
    m.push_files()
    assert m.pending == 4
    assert "127.0.0.1" in (m.last_error or "")
    before.pop("metrics.jsonl")
    after = _tree(local)
    assert {k: after[k] for k in before} == before
    outage = [r for r in caplog.records if "S3 unreachable" in r.getMessage()]
    assert len(outage) == 1, [r.getMessage() for r in outage]  # one warning per outage
    assert "step 15" in outage[0].getMessage()

    # S3 comes back on the same port, empty (as a restarted server would be)
    s3["srv"] = _start(s3["port"])
    _reset_moto(s3["port"])
    make_fs("s3://x").mkdir(s3["bucket"])
    assert m.flush(timeout_s=30) is True
    assert m.pending == 0
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    m.close()

    fs = make_fs(remote)
    base = f"{s3['bucket']}/run"
    assert fs.exists(f"{base}/checkpoints/15.committed")
    assert fs.cat_file(f"{base}/checkpoints/15/default/d/data") == open(
        os.path.join(local, "checkpoints", "15", "default", "d", "data"), "rb").read()
    assert fs.cat_file(f"{base}/metrics.jsonl") == open(os.path.join(local, "metrics.jsonl"), "rb").read()
    other = str(tmp_path / "b")
    assert WorkdirMirror(remote, other, **FAST).restore_latest() == 15


class _RecordingFS:
    """Delegates to a real fs and records deletions in order."""

    def __init__(self, fs):
        self._fs, self.deleted = fs, []

    def rm_file(self, path, *a, **k):
        self.deleted.append(("file", path))
        return self._fs.rm_file(path, *a, **k)

    def rm(self, path, *a, **k):
        self.deleted.append(("tree", path))
        return self._fs.rm(path, *a, **k)

    def __getattr__(self, name):
        return getattr(self._fs, name)


def test_keep_n_deletion(s3, tmp_path):
    local = str(tmp_path / "a")
    _make_run(local)
    remote = f"s3://{s3['bucket']}/run"
    fs = _RecordingFS(make_fs(remote))
    m = WorkdirMirror(remote, local, fs=fs, **FAST)
    _push_all(m)
    assert m.flush(timeout_s=30)
    base = f"{s3['bucket']}/run/checkpoints"
    assert fs.exists(f"{base}/5.committed") and fs.exists(f"{base}/5/_CHECKPOINT_METADATA")
    assert fs.deleted == []

    shutil.rmtree(os.path.join(local, "checkpoints", "5"))  # orbax keep-N
    _write(os.path.join(local, "checkpoints", "15", "_CHECKPOINT_METADATA"), 10)
    m.push_checkpoint(15)
    assert m.flush(timeout_s=30)
    m.close()
    assert not fs.exists(f"{base}/5.committed")
    assert fs.find(f"{base}/5") == []
    assert fs.exists(f"{base}/10.committed") and fs.exists(f"{base}/15.committed")
    assert fs.exists(f"{base}/10/default/ocdbt.process_0/d/abc123")
    # the marker goes first, then the files
    assert fs.deleted[0] == ("file", f"{base}/5.committed")
    assert fs.deleted[1][0] == "tree" and fs.deleted[1][1].rstrip("/") == f"{base}/5"
    # local files are never touched by the mirror
    assert sorted(os.listdir(os.path.join(local, "checkpoints"))) == ["10", "15"]


def test_is_remote_and_staging_dir(tmp_path, monkeypatch):
    assert is_remote("s3://bucket/prefix")
    assert is_remote("gs://b/p") and is_remote("S3://b")
    assert not is_remote("runs/x") and not is_remote("/abs/runs/x")
    assert not is_remote("file:///abs/runs/x") and not is_remote("C:\\runs\\x")

    assert local_staging_dir("runs/x") == "runs/x"
    assert local_staging_dir("file:///abs/runs/x") == "/abs/runs/x"

    monkeypatch.delenv("YOSHIMIDI_STAGING", raising=False)
    a = local_staging_dir("s3://bucket/runs/a")
    assert a.startswith(os.path.expanduser(os.path.join("~", ".cache", "yoshimidi", "staging")) + os.sep)
    assert len(os.path.basename(a)) == 16
    assert a == local_staging_dir("s3://bucket/runs/a/")  # stable, trailing / ignored
    assert a != local_staging_dir("s3://bucket/runs/b")
    assert os.path.basename(a) == os.path.basename(local_staging_dir("s3://bucket/runs/a", root=str(tmp_path)))

    monkeypatch.setenv("YOSHIMIDI_STAGING", str(tmp_path / "env"))
    assert os.path.dirname(local_staging_dir("s3://bucket/runs/a")) == str(tmp_path / "env")
    # an explicit root wins over the environment
    assert os.path.dirname(local_staging_dir("s3://bucket/runs/a", root=str(tmp_path / "arg"))) == str(tmp_path / "arg")


def test_resume_on_a_new_machine_keeps_the_remote_history(s3, tmp_path):
    """A fresh staging dir pulls only the latest step; pushing the next one
    must not delete the older remote steps (the best one may be among them)."""
    remote = f"s3://{s3['bucket']}/run"
    first = str(tmp_path / "machine_a")
    _make_run(first)
    m = WorkdirMirror(remote, first, **FAST)
    _push_all(m)
    assert m.flush(timeout_s=30)
    m.close()

    second = str(tmp_path / "machine_b")
    b = WorkdirMirror(remote, second, **FAST)
    assert b.restore_latest() == 10
    _write(os.path.join(second, "checkpoints", "15", "_CHECKPOINT_METADATA"), 10)
    b.push_checkpoint(15)
    assert b.flush(timeout_s=30)
    shutil.rmtree(os.path.join(second, "checkpoints", "10"))  # keep-N drops the step b downloaded
    _write(os.path.join(second, "checkpoints", "20", "_CHECKPOINT_METADATA"), 10)
    b.push_checkpoint(20)
    assert b.flush(timeout_s=30)
    b.close()
    fs = make_fs(remote)
    base = f"{s3['bucket']}/run/checkpoints"
    assert fs.exists(f"{base}/5.committed")  # never held by b: kept
    assert not fs.exists(f"{base}/10.committed")  # held by b, then dropped by keep-N: deleted
    assert fs.exists(f"{base}/15.committed") and fs.exists(f"{base}/20.committed")


def test_a_stale_staging_dir_yields_to_a_newer_remote(s3, tmp_path):
    remote = f"s3://{s3['bucket']}/run"
    stale = str(tmp_path / "machine_a")
    _make_run(stale)  # steps 5 and 10 locally
    elsewhere = str(tmp_path / "machine_b")
    _make_run(elsewhere)
    _write(os.path.join(elsewhere, "checkpoints", "30", "_CHECKPOINT_METADATA"), 123)
    _write(os.path.join(elsewhere, "metrics.jsonl"), 900)
    b = WorkdirMirror(remote, elsewhere, **FAST)
    _push_all(b, steps=(30,))
    assert b.flush(timeout_s=30)
    b.close()

    a = WorkdirMirror(remote, stale, **FAST)
    assert a.restore_latest() == 30
    a.close()
    assert os.path.getsize(os.path.join(stale, "checkpoints", "30", "_CHECKPOINT_METADATA")) == 123
    assert os.path.getsize(os.path.join(stale, "metrics.jsonl")) == 900  # the remote's logs win too
