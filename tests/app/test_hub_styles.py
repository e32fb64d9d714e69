"""A session's style, in process (no socket): the server's Hub opens each
session's slot of the BatchPlayer in the session's style, a reset carrying a
style reopens it in that one, and a model trained without styles lists none
and refuses any but "any" with an error naming the field."""

from __future__ import annotations

import asyncio

import pytest

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.app.protocol import ProtocolError, ResetMsg
from yoshimidi_jax.app.server import Hub, ServerOptions
from yoshimidi_jax.play.batch import BatchPlayer
from yoshimidi_jax.tokens.styles import NO_STYLE, STYLES, StyleError, style_id

CACHE = 32


def _player(num_styles: int) -> BatchPlayer:
    cfg = small_config(max_len=CACHE)
    cfg.model.num_styles = num_styles
    model, params = model_and_params(cfg, seed=1)
    return BatchPlayer(model, params, num_slots=2, cache_len=CACHE)


@pytest.fixture(scope="module")
def styled():
    return _player(len(STYLES))


@pytest.fixture(scope="module")
def plain():
    return _player(0)


def _hub(player: BatchPlayer, **options) -> Hub:
    return Hub([player], {"name": "test"}, ServerOptions(max_sessions=2, **options))


def test_sessions_open_and_reset_in_their_style(styled):
    hub = _hub(styled, style=style_id("fiddle"))
    try:
        async def play():
            a = await hub.open_session()
            b = await hub.open_session()
            hello = hub.hello(a)
            assert hello["styles"] == list(STYLES) and hello["style"] == "fiddle"
            assert [styled.style(s.slot) for s in (a, b)] == [style_id("fiddle")] * 2
            assert await hub.handle(a, ResetMsg(style="chorale")) == {"type": "reset", "style": "chorale"}
            assert [styled.style(s.slot) for s in (a, b)] == [style_id("chorale"), style_id("fiddle")]
            assert await hub.handle(a, ResetMsg()) == {"type": "reset", "style": "chorale"}  # kept
            assert styled.style(a.slot) == style_id("chorale")
            assert await hub.handle(b, ResetMsg(style="any")) == {"type": "reset", "style": "any"}
            assert styled.style(b.slot) == NO_STYLE and hub.hello(b)["style"] == "any"
            for s in (a, b):
                hub.close_session(s)

        asyncio.run(play())
    finally:
        for batcher in hub.batchers:
            batcher.close()


def test_a_model_without_styles_lists_none_and_takes_only_any(plain):
    with pytest.raises(StyleError, match="trained without styles"):
        _hub(plain, style=style_id("fiddle"))
    hub = _hub(plain)
    try:
        async def play():
            s = await hub.open_session()
            hello = hub.hello(s)
            assert hello["styles"] == [] and hello["style"] == "any" and hub.info()["styles"] == []
            with pytest.raises(ProtocolError) as info:
                await hub.handle(s, ResetMsg(style="fiddle", id=5))
            e = info.value
            assert (e.field, e.msg_id) == ("style", 5) and "trained without styles" in e.why, e
            assert plain.style(s.slot) == NO_STYLE
            assert await hub.handle(s, ResetMsg(style="any")) == {"type": "reset", "style": "any"}
            hub.close_session(s)

        asyncio.run(play())
    finally:
        for batcher in hub.batchers:
            batcher.close()
