"""Text alternatives for charts outside Overview and Demographic performance: the numbers as a table.

The Video search timeline (a plotly chart) has a table beside it with the same tracks, spans and
candidates, as plain text (a subject id is never markup there, unlike the chart legend's escaped label).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dashboard.web.test_video_page import (  # noqa: F401  (fixtures)
    ALPHA,
    BRAVO,
    Jobs,
    footage,
    numbers,
    run_job,
    video_env,
    video_page,
)

pytestmark = [pytest.mark.model]


def test_the_video_timeline_has_its_numbers_as_a_table(video_env: tuple[str, Path, Jobs],  # noqa: F811
                                                       footage: dict[str, bytes]) -> None:  # noqa: F811
    at = run_job(video_page(), "cam.mp4", footage["cam.mp4"])
    (figure,) = at.get("plotly_chart")
    bars = [t for t in json.loads(figure.proto.spec)["data"] if t["type"] == "bar"]
    charted = sorted((float(start), float(start + length), b["name"])
                     for b in bars for start, length in zip(numbers(b["base"]), numbers(b["x"]), strict=True))
    table = next(d.value for d in at.dataframe if "best face at (s)" in d.value.columns)
    listed = sorted((float(r["starts (s)"]), float(r["ends (s)"]), r["candidate"])
                    for _, r in table.iterrows())
    assert listed == charted == [(1.0, 4.0, ALPHA), (5.5, 7.0, "(no candidate)"), (9.0, 11.0, BRAVO),
                                 (13.0, 15.0, ALPHA)]
    assert table["faces"].min() > 0 and list(table["track"]) == sorted(table["track"])
