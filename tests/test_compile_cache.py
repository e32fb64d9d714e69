"""The persistent compilation cache (compile_cache.py): its folder from the
environment, and a run that goes on without it where the folder cannot be made."""

from __future__ import annotations


def test_compile_cache_folder_from_the_environment():
    from yoshimidi_jax.compile_cache import default_dir

    assert default_dir({"YOSHIMIDI_JAX_CACHE": "/x/y"}) == "/x/y"
    assert default_dir({"YOSHIMIDI_JAX_CACHE": ""}) is None  # off
    assert default_dir({"XDG_CACHE_HOME": "/c"}) == "/c/yoshimidi/jax"


def test_compile_cache_off_where_its_folder_cannot_be_made(tmp_path):
    from yoshimidi_jax.compile_cache import enable

    blocker = tmp_path / "file"
    blocker.write_text("")
    assert enable(str(blocker / "sub")) is None  # a file in the way: warned, and the run goes on
