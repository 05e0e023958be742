"""axe-core and contrast measurements in the real browser of :mod:`tests.dashboard.web.browser`.

axe-core comes from the ``axe-core-python`` package (it vendors ``axe.min.js``; a test
dependency of the project): nothing is fetched at run time. :func:`audit_page` runs it on
the page shown and measures the contrast ratios (WCAG 2.1 relative luminance) of body text,
captions, chart tick labels and chart marks against the colour behind them (text of a
disabled widget is left out: WCAG 1.4.3 exempts inactive components; so is what is not shown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from tests.dashboard.web.browser import WebDriver

#: The WCAG 2.x A and AA rules (axe tags).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: Impacts that fail the check.
FAILING = {"serious", "critical"}


def axe_source() -> str:
    """The vendored ``axe.min.js``."""
    return resources.files("axe_core_python").joinpath("axe.min.js").read_text(encoding="utf-8")


#: The one exception, node by node: the cell ids of Streamlit's data grid (``glide-cell-C-R``) repeat when a
#: page shows two tables. axe-core 4.4 files duplicate ids under WCAG 4.1.1 (Parsing), which WCAG 2.2
#: made obsolete (and axe-core 4.7+ no longer reports under the WCAG tags); any other duplicate id fails.
GRID_IDS = ("duplicate-id", "duplicate-id-active", "duplicate-id-aria")
#: The second, node by node: an EMPTY date field's segments (role ``spinbutton``, showing "yyyy", "mm", "dd")
#: have no ``aria-valuenow``. WAI-ARIA 1.2 made it optional for spinbutton ("SHOULD set ... when the spinbutton
#: has a value", w3c/aria#797); axe-core 4.4 still checks ARIA 1.1 (dequelabs/axe-core#3505, fixed in later
#: releases). Only nodes whose one missing attribute is aria-valuenow on a spinbutton are left out.
EMPTY_SPINBUTTON = "aria-required-attr"

_RUN_AXE = """
const done = arguments[arguments.length - 1];
const grid = arguments[1];
const text = n => (n.target || []).join(' ');
const emptySpin = n => {
  const e = document.querySelector((n.target || [])[0]);
  const missing = [...(n.failureSummary || '').matchAll(/not present: ([^\\n]+)/g)].map(m => m[1].trim());
  return e !== null && e.getAttribute('role') === 'spinbutton' && missing.length > 0
    && missing.every(m => m === 'aria-valuenow');
};
axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
  .then(r => done(r.violations
    .map(v => ({...v, nodes: grid.includes(v.id) ? v.nodes.filter(n => !text(n).includes('glide-cell-')) : v.nodes}))
    .map(v => ({...v, nodes: v.id === arguments[2] ? v.nodes.filter(n => !emptySpin(n)) : v.nodes}))
    .filter(v => v.nodes.length > 0)
    .map(v => ({id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
        nodes: v.nodes.slice(0, 5).map(n => text(n) + ' :: ' + (n.failureSummary || '').slice(0, 300))}))))
  .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));
"""

# For each kind of element: its colour (text: computed colour; SVG: the fill) with its alpha and
# opacity, blended over the first opaque background behind it (the page's, for charts).
_CONTRAST = """
function rgba(text) {
  const m = (text || '').match(/rgba?\\(([^)]+)\\)/);
  if (!m) { return null; }
  const p = m[1].split(',').map(s => parseFloat(s));
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
}
function hex(text) {
  if (!text || text[0] !== '#') { return rgba(text); }
  const h = text.length === 4 ? text.slice(1).split('').map(c => c + c).join('') : text.slice(1, 7);
  return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16), 1];
}
function background(el) {
  // the first opaque background of an ancestor whose box holds the element's centre (a slider's value
  // label sits above the thumb, outside the thumb's box: the thumb's colour is not behind it)
  const r = el.getBoundingClientRect();
  const [x, y] = [r.left + r.width / 2, r.top + r.height / 2];
  for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    const b = e.getBoundingClientRect();
    if (c && c[3] >= 0.99 && x >= b.left && x <= b.right && y >= b.top && y <= b.bottom) { return c; }
  }
  return [255, 255, 255, 1];
}
function lum(c) {
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
}
function ratio(fg, bg) {
  const a = fg[3];
  const mixed = [0, 1, 2].map(i => fg[i] * a + bg[i] * (1 - a));
  const [hi, lo] = [lum(mixed), lum(bg)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}
function opacity(el) {
  let o = 1;
  for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
    const s = getComputedStyle(e);
    o *= parseFloat(s.opacity || '1');
    if (e.getAttribute && e.getAttribute('fill-opacity')) { o *= parseFloat(e.getAttribute('fill-opacity')); }
  }
  return o;
}
const kinds = {
  text: ['[data-testid="stMarkdownContainer"] p', false],
  caption: ['[data-testid="stCaptionContainer"]', false],
  tick: ['.js-plotly-plot .xtick text, .js-plotly-plot .ytick text, .js-plotly-plot .legendtext', true],
  mark: ['.js-plotly-plot .barlayer .point path, .js-plotly-plot .scatterlayer .point, '
         + '.js-plotly-plot .scatterlayer .js-line', true],
};
const out = {};
for (const [kind, [selector, svg]] of Object.entries(kinds)) {
  const seen = [];
  for (const el of document.querySelectorAll(selector)) {
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') { continue; }
    const widget = el.closest('[data-testid="stElementContainer"]');
    if (widget && widget.querySelector('[disabled], [aria-disabled="true"]')) { continue; }  // inactive: exempt
    let c = svg ? hex(el.style.fill && el.style.fill !== 'none' ? el.style.fill : (el.style.stroke || style.fill))
                : rgba(style.color);
    if (kind === 'mark' && el.classList.contains('js-line')) { c = hex(el.style.stroke || style.stroke); }
    if (!c) { continue; }
    c[3] *= opacity(el);
    if (c[3] === 0) { continue; }  // not shown (e.g. a slider's min and max, drawn on hover)
    const text = (el.textContent || '').trim().slice(0, 40);
    seen.push({ratio: Math.round(ratio(c, background(el)) * 100) / 100, text: text});
  }
  out[kind] = seen;
}
return out;
"""


@dataclass
class PageAudit:
    """What one page showed axe and the contrast measurement."""

    violations: list[dict[str, Any]] = field(default_factory=list)
    contrast: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def failing(self) -> list[dict[str, Any]]:
        """The serious and critical violations."""
        return [v for v in self.violations if v.get("impact") in FAILING]

    def lowest(self, kind: str) -> float | None:
        """The lowest contrast ratio measured for ``kind`` (None: none on the page)."""
        values = [m["ratio"] for m in self.contrast.get(kind, [])]
        return min(values) if values else None


def audit_page(driver: WebDriver, source: str) -> PageAudit:
    """Run axe-core (WCAG 2.1 A/AA rules) and the contrast measurement on the page shown."""
    if not driver.js("return typeof window.axe !== 'undefined';"):
        driver.js(source + "\nreturn true;")
    driver.cmd("POST", "/timeouts", {"script": 120_000})
    violations = driver.cmd("POST", "/execute/async", {"script": _RUN_AXE, "args": [AXE_TAGS, list(GRID_IDS), EMPTY_SPINBUTTON]})
    return PageAudit(list(violations or []), dict(driver.js(_CONTRAST)))
