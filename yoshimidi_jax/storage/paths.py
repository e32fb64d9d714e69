"""Where a run lives: local paths, remote URLs (s3://...), the local staging
dir of a remote run, the fsspec filesystem for a URL, and the finished
checkpoint steps of a local dir."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from typing import Any

log = logging.getLogger(__name__)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
STEP_RE = re.compile(r"^\d+$")  # the name of a finished orbax step dir
MARKER_RE = re.compile(r"^(\d+)\.committed$")  # the name of a step's commit marker
MARKER_SUFFIX = ".committed"
CHECKPOINTS = "checkpoints"
# the checkpoint item holding the train state ({'params', 'opt_state', 'step'}):
# train/checkpoints.py writes it, restore.py reads the params from it
STATE_ITEM = "state"
DEFAULT_FILES = ("config.json", "metrics.jsonl", "tb", "samples")
RESTORE_FILES = ("config.json", "metrics.jsonl", "tb")
# s3fs/botocore settings so that a dead endpoint fails in about a second
# instead of hanging; the mirror does its own (unbounded) retrying.
S3_CONFIG_KWARGS = {"connect_timeout": 2, "read_timeout": 10, "retries": {"max_attempts": 1}}
S3_FS_RETRIES = 2
# how long an upload of a step waits for orbax to finalize (rename) its dir
FINALIZE_WAIT_S = 600.0


def url_scheme(workdir: str) -> str | None:
    """The scheme of a URL, lower case ("s3" of "S3://b/p"); None for a plain path."""
    m = _SCHEME.match(workdir)
    return m.group(1).lower() if m else None


def is_remote(workdir: str) -> bool:
    """True when ``workdir`` is a URL with a scheme other than ``file://``."""
    scheme = url_scheme(workdir)
    return scheme is not None and scheme not in ("file", "local")


def _strip_file(workdir: str) -> str:
    return workdir[len("file://") :] if workdir.lower().startswith("file://") else workdir


def local_staging_dir(workdir: str, root: str | None = None) -> str:
    """The local dir a run writes into.

    For a local workdir that is the path itself (``file://`` stripped). For a
    remote one it is ``<root>/<sha1(url)[:16]>``, stable across restarts of the
    same run, with ``root`` from the argument, else ``$YOSHIMIDI_STAGING``,
    else ``~/.cache/yoshimidi/staging``. The URL is normalized (trailing ``/``
    dropped) before hashing.
    """
    if not is_remote(workdir):
        return _strip_file(workdir)
    if root is None:
        root = os.environ.get("YOSHIMIDI_STAGING") or os.path.join("~", ".cache", "yoshimidi", "staging")
    url = workdir.rstrip("/")
    digest = hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]
    return os.path.join(os.path.expanduser(root), digest)


def s3_endpoint() -> str | None:
    """The S3 endpoint from the environment (``AWS_ENDPOINT_URL_S3`` first), or None (AWS)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def make_fs(remote: str):
    """An fsspec filesystem for ``remote`` with fresh listings (no listing cache).

    For s3 the endpoint is passed explicitly from the environment (s3fs
    2026.9 / botocore also read ``AWS_ENDPOINT_URL`` themselves; passing it is
    harmless and keeps older stacks working), with short timeouts and few
    retries so a dead endpoint fails fast.
    """
    scheme = url_scheme(remote)
    if scheme in ("s3", "s3a"):
        import s3fs

        client_kwargs: dict[str, Any] = {}
        endpoint = s3_endpoint()
        if endpoint:
            client_kwargs["endpoint_url"] = endpoint
        # the region comes from AWS_DEFAULT_REGION through botocore itself (passing
        # region_name here makes s3fs's mkdir send an invalid us-east-1 constraint)
        fs = s3fs.S3FileSystem(
            skip_instance_cache=True,
            use_listings_cache=False,
            client_kwargs=client_kwargs,
            config_kwargs=dict(S3_CONFIG_KWARGS),
        )
        fs.retries = S3_FS_RETRIES  # a class attribute (default 5), not an __init__ argument
        return fs
    import fsspec

    return fsspec.filesystem(scheme, skip_instance_cache=True, use_listings_cache=False)


def file_sizes(root: str) -> dict[str, int]:
    """{relpath with '/': size} of the regular files under ``root``."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            out[rel] = os.path.getsize(path)
    return out


def local_steps(local: str) -> list[int]:
    """Finished orbax steps in ``local/checkpoints`` (dirs named by a bare integer), sorted."""
    ckpt = os.path.join(local, CHECKPOINTS)
    if not os.path.isdir(ckpt):
        return []
    return sorted(int(n) for n in os.listdir(ckpt) if STEP_RE.match(n) and os.path.isdir(os.path.join(ckpt, n)))
