"""JAX's persistent compilation cache, turned on by the entry points: a
second run of the same command loads its compiled programs from disk instead
of compiling them again (the sampler's scan: ~4 s on 2 CPU cores).

The folder: $YOSHIMIDI_JAX_CACHE if set (empty: off), else
$XDG_CACHE_HOME/yoshimidi/jax (~/.cache/yoshimidi/jax). jax keys each entry by
the program, the jax/jaxlib version and the device, so one folder serves every
run; delete it to free the space.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

ENV = "YOSHIMIDI_JAX_CACHE"
MIN_COMPILE_S = 0.0  # every program: a threshold makes which ones are kept depend on the machine's load


def default_dir(environ: Mapping[str, str] = os.environ) -> str | None:
    """The cache folder the environment asks for; None when turned off."""
    if ENV in environ:
        return environ[ENV] or None
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "yoshimidi", "jax")


def enable(path: str | None = None, environ: Mapping[str, str] = os.environ) -> str | None:
    """Turns the cache on at `path` (None: default_dir()); returns the folder, or None when off."""
    import jax

    folder = path if path is not None else default_dir(environ)
    if not folder:
        return None
    folder = os.path.abspath(os.path.expanduser(folder))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:  # a read-only home: run without the cache rather than not at all
        logging.getLogger(__name__).warning("jax compilation cache off: cannot create %s (%s)", folder, e)
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    return folder
