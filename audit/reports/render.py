"""Renderers of a :class:`~audit.reports.model.Report`: JSON, self-contained HTML, and PDF.

* **JSON**: :meth:`Report.to_dict`, every number as counted (what tests and scripts read).
* **HTML**: one file with nothing to fetch: plotly.js is embedded inline (from the plotly
  package) and each chart is drawn from its figure function (:mod:`audit.reports.figures`)
  as a static plot. Every string, whoever wrote it, is HTML-escaped; chart data is JSON
  with ``<`` escaped, so no text from a record or from ``report.toml`` is ever markup.
* **PDF**: the HTML printed by headless Chromium (``chromium --headless --print-to-pdf``),
  started here as a child process with a throw-away profile and a time limit. Chromium
  renders plotly.js exactly as a browser does (the charts are the dashboard's), and it is
  a Debian package CI installs; a pure-Python PDF library would need the charts as
  images, which plotly only makes through a browser anyway.
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from audit.errors import AuditError
from audit.reports.model import Block, Facts, Figure, Missing, Report, Table, Text

__all__ = ["FORMATS", "RenderError", "draw_figure", "render", "to_html", "to_json", "to_pdf"]

#: The formats a report is rendered in.
FORMATS = ("html", "pdf", "json")


class RenderError(AuditError):
    """A report could not be rendered (no Chromium for a PDF, or Chromium failed)."""

    code = "render_failed"


def to_json(report: Report) -> bytes:
    """Return the report as JSON (UTF-8, sorted keys, NaN never written)."""
    return json.dumps(report.to_dict(), indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8")


_CSS = """
@page { size: A4; margin: 14mm 12mm; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #1b1b1b; max-width: 190mm; margin: auto; }
h1 { font-size: 18pt; margin-bottom: 2pt; } h2 { font-size: 13pt; border-bottom: 1px solid #999; margin-top: 16pt;
  page-break-after: avoid; } h3 { font-size: 10.5pt; margin: 8pt 0 3pt; page-break-after: avoid; }
.refs { color: #555; font-size: 8.5pt; margin-top: -4pt; }
table { border-collapse: collapse; width: 100%; font-size: 8pt; margin: 3pt 0 6pt; page-break-inside: auto; }
th, td { border: 1px solid #bbb; padding: 2pt 4pt; text-align: left; vertical-align: top; overflow-wrap: break-word; }
th { background: #eef1f4; } tr { page-break-inside: avoid; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts td:first-child { width: 55%; }
.missing { border-left: 4px solid #e65100; background: #fff3e0; padding: 3pt 6pt; margin: 4pt 0; font-size: 9pt; }
.warning { border: 2px solid #b71c1c; background: #ffebee; padding: 6pt; font-weight: bold; }
.note { color: #444; font-size: 8.5pt; } .figure { page-break-inside: avoid; margin: 6pt 0; }
.about td:first-child { width: 35%; } pre { white-space: pre-wrap; font-size: 8pt; }
nav ol { columns: 2; font-size: 9pt; }
table.wide { font-size: 6.5pt; } td.long { word-break: break-all; }
"""


_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?Z$")


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        stamp = _TIMESTAMP.match(value)  # a record's UTC time, to the second (the JSON keeps it whole)
        return f"{stamp[1]} {stamp[2]}" if stamp else value
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value != 0 and abs(value) < 0.01:
            return f"{value:.2e}"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(value: Any) -> str:
    cls = ' class="num"' if isinstance(value, int | float) and not isinstance(value, bool) else ""
    if isinstance(value, str) and any(len(word) > 24 for word in value.split()):
        cls = ' class="long"'  # a hash or a fingerprint: may break anywhere
    return f"<td{cls}>{html.escape(_fmt(value))}</td>"


def _facts(block: Facts) -> str:
    head = f"<h3>{html.escape(block.title)}</h3>" if block.title else ""
    rows = "".join(f"<tr><td>{html.escape(f.label)}</td><td>{html.escape(_fmt(f.value))}"
                   f"{(' ' + html.escape(f.unit)) if f.unit else ''}</td></tr>" for f in block.items)
    return f'{head}<table class="facts" id="{html.escape(block.id)}">{rows}</table>'


def _table(block: Table) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in block.columns)
    if block.rows:
        body = "".join("<tr>" + "".join(_cell(r.get(k)) for k, _ in block.columns) + "</tr>" for r in block.rows)
    else:
        body = f'<tr><td colspan="{len(block.columns)}">{html.escape(block.empty)}</td></tr>'
    note = f'<p class="note">{html.escape(block.note)}</p>' if block.note else ""
    wide = ' class="wide"' if len(block.columns) >= 8 else ""
    return (f"<h3>{html.escape(block.title)}</h3><table id=\"{html.escape(block.id)}\"{wide}><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{note}")


def draw_figure(block: Figure) -> Any:
    """Return the plotly figure of a :class:`Figure` block (plotly loads only when a figure is drawn).

    Raises
    ------
    KeyError
        The block names no known figure.
    """
    from audit.reports.figures import draw  # noqa: PLC0415

    return draw(block.figure, block.data)


def _figure(block: Figure, number: int) -> str:
    from plotly.utils import PlotlyJSONEncoder  # noqa: PLC0415 (plotly loads only when a report is drawn)

    spec = json.dumps(draw_figure(block).to_plotly_json(), cls=PlotlyJSONEncoder)
    spec = spec.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    div = f"fig{number}"
    return (f'<div class="figure"><div id="{div}"></div><p class="note">{html.escape(block.caption)}</p>'
            f"<script>(function(){{var f={spec};Plotly.newPlot('{div}',f.data,f.layout,"
            "{staticPlot:true,displayModeBar:false});})();</script></div>")


def _block(block: Block, number: int) -> str:
    if isinstance(block, Text):
        tag = "pre" if "\n" in block.text else "p"
        return f"<{tag}>{html.escape(block.text)}</{tag}>"
    if isinstance(block, Missing):
        return (f'<div class="missing" id="{html.escape(block.id)}"><b>{html.escape(block.label)}</b>: '
                f"{html.escape(block.reason)}</div>")
    if isinstance(block, Facts):
        return _facts(block)
    if isinstance(block, Table):
        return _table(block)
    return _figure(block, number)


def _about(report: Report) -> str:
    a = report.about
    period = a["period"]
    privacy = a.get("privacy") or {}
    rows = [("Deployment", a.get("deployment")), ("Period", f"{period['from']} to {period['to']} (UTC, inclusive)"),
            ("Generated", a.get("generated_at")), ("Audit log state", f"records 1 to {a.get('tree_size')}, "
                                                                       f"Merkle root {a.get('root') or 'none'}"),
            ("Log verifies", "yes" if a.get("verified") else "NO"), ("Deployer's file", a.get("report_toml")),
            ("Version", "public (pseudonymised, small cells suppressed)" if privacy.get("public") else "full")]
    rows += [(f"Privacy: {k.replace('_', ' ')}", v) for k, v in privacy.items() if k != "public"]
    return '<table class="about facts">' + "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows) + "</table>"


def to_html(report: Report) -> bytes:
    """Return the report as one self-contained HTML file (plotly.js inline, every string escaped)."""
    from plotly.offline import get_plotlyjs  # noqa: PLC0415

    parts = [f"<h1>{html.escape(report.title)}</h1>", _about(report)]
    parts += [f'<p class="warning">{html.escape(w)}</p>' for w in report.warnings]
    parts.append("<nav><ol>" + "".join(f'<li><a href="#s-{html.escape(s.id)}">{html.escape(s.title)}</a></li>'
                                       for s in report.sections) + "</ol></nav>")
    number = 0
    for s in report.sections:
        parts.append(f'<section id="s-{html.escape(s.id)}"><h2>{html.escape(s.title)}</h2>'
                     f'<p class="refs">{html.escape("; ".join(s.references))}</p>')
        for b in s.blocks:
            number += 1
            parts.append(_block(b, number))
        parts.append("</section>")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.title)}</title>'
            f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head><body>{''.join(parts)}</body></html>")
    return page.encode("utf-8")


def to_pdf(report: Report, chromium: str | None = None, timeout: float = 180.0) -> bytes:
    """Return the report's HTML printed to PDF by headless Chromium.

    Raises
    ------
    RenderError
        Chromium is not installed, fails, or writes no PDF within ``timeout`` seconds.
    """
    browser = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RenderError("a PDF report needs Chromium (Debian: apt-get install chromium); "
                          "or write --format html and print it")
    with tempfile.TemporaryDirectory(prefix="facetrail-report-") as tmp:
        folder = Path(tmp)
        page, pdf = folder / "report.html", folder / "report.pdf"
        page.write_bytes(to_html(report))
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                   "--disable-extensions", "--no-first-run", f"--user-data-dir={folder / 'profile'}",
                   "--virtual-time-budget=20000", "--run-all-compositor-stages-before-draw",
                   f"--print-to-pdf={pdf}", page.as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            raise RenderError(f"Chromium did not print the report within {timeout:g} s") from err
        except OSError as err:
            raise RenderError(f"cannot start Chromium ({browser}): {err}") from err
        data = pdf.read_bytes() if pdf.is_file() else b""
        if done.returncode != 0 or not data.startswith(b"%PDF"):
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise RenderError(f"Chromium failed to print the report (exit {done.returncode}): {' | '.join(tail)}")
        return data


def render(report: Report, fmt: str, *, chromium: str | None = None) -> bytes:
    """Return the report in ``fmt`` (``json``, ``html`` or ``pdf``).

    Raises
    ------
    ValueError
        An unknown format.
    RenderError
        A PDF could not be printed.
    """
    if fmt == "json":
        return to_json(report)
    if fmt == "html":
        return to_html(report)
    if fmt == "pdf":
        return to_pdf(report, chromium)
    raise ValueError(f"unknown report format {fmt!r}; use html, pdf or json")
