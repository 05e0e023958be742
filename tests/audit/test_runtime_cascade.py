"""A gallery is searched with its own detector cascade and mirror setting, not with today's default."""

from __future__ import annotations

import json

import pytest

from audit.runtime import Runtime
from core.engine import DEFAULT_FALLBACKS, DEFAULT_MIRROR_AVERAGE

pytestmark = [pytest.mark.model]  # configurations carry the installed weights' checksums


def test_each_gallery_gets_the_engine_of_the_configuration_it_was_enrolled_under(tmp_path) -> None:
    rt = Runtime(str(tmp_path / "rt.duckdb"))
    default = rt.config()
    plain = rt.config(fallback_detectors=(), mirror_average=False)
    assert (default.fallback_detectors, default.mirror_average) == (DEFAULT_FALLBACKS, DEFAULT_MIRROR_AVERAGE)
    assert plain.embedding_key != default.embedding_key or not (DEFAULT_FALLBACKS or DEFAULT_MIRROR_AVERAGE)
    rt.galleries.create("made-today", default)
    rt.galleries.create("plain", plain)
    assert rt.engine_for_gallery("made-today").config.embedding_key == default.embedding_key
    searching = rt.engine_for_gallery("plain").config
    assert searching.embedding_key == plain.embedding_key
    assert (searching.fallback_detectors, searching.mirror_average) == ((), False)
    rt.close()


def test_a_gallery_stored_before_cascades_existed_is_searched_without_one(tmp_path) -> None:
    rt = Runtime(str(tmp_path / "rt.duckdb"))
    plain = rt.config(fallback_detectors=(), mirror_average=False)
    rt.galleries.create("old", plain)
    stored = {k: v for k, v in plain.to_dict().items() if k not in {"fallback_detectors", "mirror_average"}}
    with rt.db.connect(transaction=True) as con:  # the binding as a gallery made before issue 16 holds it
        con.execute("UPDATE galleries SET config = ? WHERE name = 'old'", [json.dumps(stored)])
    assert "fallback_detectors" not in rt.galleries.binding("old")[1]
    assert rt.engine_for_gallery("old").config.embedding_key == plain.embedding_key
    rt.close()
