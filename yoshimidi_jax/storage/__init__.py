"""Workdir storage: a local staging dir mirrored to a remote (``s3://...``) workdir.

Orbax writes checkpoints to local disk (its tensorstore specs do not speak
``s3://``), so a remote ``--workdir`` is trained into a local staging dir
(:func:`local_staging_dir`) and mirrored by :class:`WorkdirMirror` with fsspec
(s3fs for ``s3://``). Uploads run on one background thread; the training thread
only enqueues work and never waits on the network.

Remote layout (``R`` is the remote workdir, e.g. ``s3://bucket/runs/x``)::

    R/config.json, R/metrics.jsonl, R/tb/..., R/samples/...   (overwritten)
    R/checkpoints/<step>/...            the files of orbax's local <step>/ dir
    R/checkpoints/<step>.committed      the commit marker of step <step>

The marker is a small JSON object ``{"step", "files": {relpath: size}}``
written only after every file of the step has been uploaded. It lives *beside*
the step's prefix, not inside it, so deleting a step is "delete the marker,
then the prefix" and a listing of ``R/checkpoints/`` shows finished steps
(``<step>.committed``) and their data (``<step>/``) apart. A step without its
marker (upload interrupted, or being deleted) is never restored; on restore the
marker's file list and sizes are checked against what is there.

S3 endpoint and credentials come from the standard AWS environment variables
(``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``).
"""

from yoshimidi_jax.storage.mirror import WorkdirMirror
from yoshimidi_jax.storage.paths import is_remote, local_staging_dir, local_steps, make_fs, s3_endpoint

__all__ = ["WorkdirMirror", "is_remote", "local_staging_dir", "local_steps", "make_fs", "s3_endpoint"]
