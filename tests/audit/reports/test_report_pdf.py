"""The PDF and HTML reports: every section of each template is in the PDF's text (pdftotext), the HTML fetches nothing."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from audit import REPORT_TEMPLATES
from tests.audit.reports.scene import EXAMPLE_TOML, facts, make

pytestmark = pytest.mark.slow  # starts Chromium and pdftotext


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _pdf_text(path: Path) -> str:
    done = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, timeout=60)
    return _words(done.stdout.decode("utf-8"))


@pytest.mark.parametrize("template", list(REPORT_TEMPLATES))
def test_every_section_is_in_the_pdf_text(scene_db: str, tmp_path: Path, template: str) -> None:
    out = tmp_path / f"{template}.pdf"
    done = make(scene_db, template, "pdf", toml=EXAMPLE_TOML, out=out)
    assert out.read_bytes().startswith(b"%PDF")
    text = _pdf_text(out)
    for _, title, references, _ in REPORT_TEMPLATES[template]:
        assert _words(title) in text, title
        assert _words(references[0]) in text, references[0]
    about = done.result.report.about
    assert f"records 1 to {about['tree_size']}" in text
    assert "Log verifies yes" in text


def test_the_pdf_shows_the_counted_numbers(scene_db: str, tmp_path: Path) -> None:
    json_out, pdf_out = tmp_path / "r.json", tmp_path / "r.pdf"
    make(scene_db, "rcw-43.386", "json", toml=EXAMPLE_TOML, out=json_out)
    make(scene_db, "rcw-43.386", "pdf", toml=EXAMPLE_TOML, out=pdf_out)
    report = json.loads(json_out.read_bytes())
    text = _pdf_text(pdf_out)
    for label, value in (("searches (1:N)", facts(report, "usage", "usage_totals")["search"]),
                         ("candidates (and verified pairs) to review",
                          facts(report, "review", "review_outcomes")["candidates"]),
                         ("attempts to review one's own query (refused)",
                          facts(report, "anomalies", "anomalies")["self_review_attempts"])):
        assert re.search(re.escape(label) + r" +" + str(value) + r"\b", text), (label, value)


def test_the_html_is_self_contained_and_escapes_what_it_is_given(scene_db: str, tmp_path: Path) -> None:
    toml = tmp_path / "report.toml"
    toml.write_text(EXAMPLE_TOML.read_text().replace(
        'name = "Example County', 'name = "<script>alert(1)</script><img src=x onerror=alert(2)> Example County'))
    out = tmp_path / "r.html"
    make(scene_db, "full", "html", toml=toml, out=out)
    page = out.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    assert page.count("Plotly.newPlot(") >= 4 and len(page) > 1_000_000  # the charts, and plotly.js inline
