"""Benchmark of the dashboard's page render times in a real browser (headless Chromium), per role.

Serves a COPY of a database (default ``data/facetrail.duckdb``; the copy takes its ``.keys`` file and any
``.evidence`` folder along, so the sign-ins this run records never touch the original), then for one account
per role (operator1, reviewer1, auditor1, admin1 with the demo password ``<name>-demo`` unless
``--password`` says otherwise), N times: signs in, clicks every page the role's navigation lists, and signs
out. Each page's render time is the time from the navigation click until the page shows its title and has
settled: the app's script run has finished (Streamlit's ``data-test-script-state`` is ``notRunning``; the
status widget alone shows only after a delay), no skeleton and no stale element of the page before are left
(``tests.dashboard.web.browser.settle``'s condition, without its pause for plotly).

Baseline, in the same run: the Sign-in page's render, timed the same way from the click on "Sign out" (a
rerun that renders Sign in). Each page prints the p50 (and the slowest) of its N visits and the ratio of the
p50 to the Sign-in page's p50. The first visit of a page pays for its cold caches; the p50 reads past it.
The machine is shared: compare ratios, and say what the load average was.

The audit signing key is found as the dashboard finds it ($FACETRAIL_CONFIG_DIR, $FACETRAIL_AUDIT_KEY_DIR).

``--grow N`` (the large-log case, e.g. 50000): before serving, the copy's log gets N more
synthetic records, copies of its own searches (the same operators, galleries, candidates
and sealed subjects, a second apart after the last record), appended and signed through
:meth:`audit.AuditLog.append` as any search is. A page whose cost follows the page shown,
not the log, renders about as fast as on the demo itself; ``--keep PATH`` keeps the grown
copy (with its keys) to serve another checkout's dashboard on the same log (the before of
a change). ``--pages`` limits the pages visited (comma-separated titles). ``--serve-from CHECKOUT``
serves another checkout's dashboard (its code on ``PYTHONPATH``), e.g. the main branch, for
a before/after on the same database in the same session of measurements.

Usage: .venv/bin/python benchmarks/bench_pages.py [--db PATH] [--visits N] [--grow N] [--keep PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dashboard.web import browser  # noqa: E402
from tests.dashboard.web.browser import (  # noqa: E402
    WebDriver,
    chromium_paths,
    dashboard,
    exceptions_on_page,
)

#: Navigation title -> the page's h1.
TITLES = {
    "Overview": "Overview", "Search": "Search a gallery", "Video search": "Video search",
    "Verify": "Verify two photos", "Match log": "Match log", "Blind review": "Blind review",
    "Demographic performance": "Demographic performance", "Integrity": "Integrity of the audit log",
    "Retention": "Retention", "Exports": "Exports", "Reports": "Reports", "Administration": "Administration",
}
SIGN_IN = "Sign in"
ACCOUNTS = ("operator1", "reviewer1", "auditor1", "admin1")
SETTLED = ("const h = [...document.querySelectorAll('h1')].map(e => e.innerText.trim());"
           "const app = document.querySelector('[data-testid=\"stApp\"]');"
           "const busy = document.querySelector('[data-testid=\"stStatusWidget\"], [data-testid^=\"stSkeleton\"],"
           " [data-testid=\"stAppSkeleton\"], [data-stale=\"true\"]');"
           "return h.includes(arguments[0]) && !busy && !!app"
           " && app.getAttribute('data-test-script-state') === 'notRunning';")
NAV_LINKS = ("return [...document.querySelectorAll('a[data-testid=\"stSidebarNavLink\"]')]"
             ".map(a => a.innerText.trim().split('\\n').pop().trim());")


def wait_settled(driver: WebDriver, title: str, started: float, timeout: float = 120) -> float:
    """Seconds from ``started`` until the page titled ``title`` has settled."""
    while not driver.js(SETTLED, title):
        if time.perf_counter() - started > timeout:
            state = driver.js("const a = document.querySelector('[data-testid=\"stApp\"]');"
                              "return [a && a.getAttribute('data-test-script-state'),"
                              " [...document.querySelectorAll('h1')].map(e => e.innerText.trim())];")
            # not a TimeoutError: browser.dashboard() reports one from its body as the server not starting
            raise RuntimeError(f"page {title!r} did not settle within {timeout} s (script state, headings: {state})")
        time.sleep(0.02)
    return time.perf_counter() - started


def click(driver: WebDriver, selector: str, text: str) -> float:
    """Click the ``selector`` element whose text is ``text``; the click's start time."""
    started = time.perf_counter()
    found = driver.js("const [sel, text] = arguments; for (const el of document.querySelectorAll(sel)) {"
                      " if (el.innerText.trim().split('\\n').pop().trim() === text) { el.click(); return true; } }"
                      " return false;", selector, text)
    if not found:
        raise RuntimeError(f"no {selector!r} with text {text!r} on the page")
    return started


def sign_in(driver: WebDriver, name: str, password: str) -> None:
    wait_settled(driver, "facetrail", time.perf_counter())
    for label, value in (("Account", name), ("Password", password)):
        element = driver.find(f'input[aria-label="{label}"]')
        driver.cmd("POST", f"/element/{element}/click", {})
        driver.cmd("POST", f"/element/{element}/value", {"text": value})
    click(driver, "button", "Sign in")
    wait_settled(driver, "Overview", time.perf_counter())


def measure(url: str, accounts: tuple[str, ...], password: str, visits: int, chromium: str,
            chromedriver: str, only: set[str] | None = None) -> tuple[dict[str, dict[str, list[float]]],
                                                                     dict[str, list[str]]]:
    """Render times by account and page (Sign in included), and the exceptions any page showed."""
    times: dict[str, dict[str, list[float]]] = {}
    errors: dict[str, list[str]] = {}
    driver = WebDriver(chromium, chromedriver)
    try:
        driver.cmd("POST", "/window/rect", {"width": 1400, "height": 1000})
        for account in accounts:
            ours = times.setdefault(account, {})
            for _ in range(visits):
                driver.get(url)  # the Overview's address: signed out, it shows Sign in, and signing in opens it
                sign_in(driver, account, password.format(name=account))
                pages = [p for p in driver.js(NAV_LINKS) if p in TITLES and (only is None or p in only)]
                unknown = [p for p in driver.js(NAV_LINKS) if p not in TITLES]
                if unknown:
                    raise RuntimeError(f"pages with no known title: {unknown}")
                # start from the last page, so the first click (Overview) is a navigation too; with one page
                # to time, from another page of the role (clicking the page one is on is no navigation)
                others = [p for p in driver.js(NAV_LINKS) if p in TITLES and p not in pages]
                driver_page = pages[-1] if len(pages) > 1 or not others else others[-1]
                wait_settled(driver, TITLES[driver_page], click(driver, 'a[data-testid="stSidebarNavLink"]', driver_page))
                for page in pages:
                    started = click(driver, 'a[data-testid="stSidebarNavLink"]', page)
                    ours.setdefault(page, []).append(wait_settled(driver, TITLES[page], started))
                    shown = exceptions_on_page(driver)
                    if shown:
                        errors[f"{account} {page}"] = shown
                started = click(driver, "button", "Sign out")
                ours.setdefault(SIGN_IN, []).append(wait_settled(driver, "facetrail", started))
    finally:
        driver.quit()
    return times, errors


def grow(db: Path, n: int, batch: int = 1000) -> int:
    """Append ``n`` copies of the log's own searches (later times, same fields); return the log's size after."""
    from datetime import UTC, datetime, timedelta

    from audit import AuditFilter, Runtime

    rt = Runtime(str(db))
    try:
        searches = [e.record.to_dict() for e in rt.log.list(AuditFilter(action="search"))]
        if not searches:
            raise SystemExit(f"--grow: {db.name} has no search to copy")
        last = datetime.fromisoformat(rt.log.get(rt.log.size()).record.started_at.replace("Z", "+00:00"))
        for start in range(0, n, batch):
            with rt.log.transaction():
                for i in range(start, min(start + batch, n)):
                    fields = {k: v for k, v in searches[i % len(searches)].items()
                              if k not in ("seq", "v", "started_at", "ended_at")}
                    when = (last + timedelta(seconds=i + 1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                    rt.log.append({**fields, "started_at": when, "ended_at": when})
        return rt.log.size()
    finally:
        rt.db.close()


def copy_database(db: Path, folder: Path) -> Path:
    """Copy ``db`` with its write-ahead log, keys and evidence folder into ``folder`` (tests.dashboard.conftest)."""
    from tests.dashboard.conftest import copy_db

    return Path(copy_db(db, folder))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "facetrail.duckdb")
    parser.add_argument("--visits", type=int, default=5, help="visits of each page per account (p50 of these)")
    parser.add_argument("--accounts", default=",".join(ACCOUNTS), help="comma-separated accounts, one per role")
    parser.add_argument("--password", default="{name}-demo", help="password template ({name}: the account)")
    parser.add_argument("--grow", type=int, default=0, metavar="N",
                        help="append N synthetic searches to the copy before serving (the large-log case)")
    parser.add_argument("--keep", type=Path, help="also keep the (grown) copy here, with its keys")
    parser.add_argument("--pages", help="comma-separated page titles to visit (default: every page of the role)")
    parser.add_argument("--serve-from", type=Path, metavar="CHECKOUT",
                        help="serve this checkout's dashboard instead of this one's (a before/after)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.serve_from is not None:
        app = args.serve_from.resolve() / "dashboard" / "web" / "streamlit_app.py"
        if not app.is_file():
            parser.error(f"--serve-from {args.serve_from}: no dashboard/web/streamlit_app.py there")
        browser.REPO, browser.APP = args.serve_from.resolve(), app
        os.environ["PYTHONPATH"] = str(args.serve_from.resolve())
    if args.visits < 1:
        parser.error(f"--visits must be at least 1, not {args.visits}")
    if args.grow < 0:
        parser.error(f"--grow must be 0 or more, not {args.grow}")
    only = None if args.pages is None else {p.strip() for p in args.pages.split(",") if p.strip()}
    if only is not None and only - set(TITLES):
        parser.error(f"--pages: no page titled {', '.join(sorted(only - set(TITLES)))}")
    if not args.db.is_file():
        parser.error(f"--db {args.db}: no such database file")
    found = chromium_paths()
    if found is None:
        sys.exit("install chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    accounts = tuple(a.strip() for a in args.accounts.split(",") if a.strip())
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="facetrail-bench-pages-") as folder:
        db = copy_database(args.db, Path(folder))
        size = grow(db, args.grow) if args.grow else None
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            copy_database(db, args.keep)
        with dashboard(str(db)) as url:
            times, errors = measure(url, accounts, args.password, args.visits, *found, only=only)
    baseline = statistics.median(t for account in times.values() for t in account.get(SIGN_IN, []))
    rows = []
    for account, pages in times.items():
        for page, seconds in pages.items():
            p50 = statistics.median(seconds)
            rows.append({"account": account, "page": page, "visits": len(seconds), "p50_s": round(p50, 3),
                         "max_s": round(max(seconds), 3), "ratio_to_sign_in": round(p50 / baseline, 2)})
    result = {"db": args.db.name, "served_from": str(browser.REPO.name), "grown_to": size, "visits": args.visits, "sign_in_p50_s": round(baseline, 3),
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()], "pages": rows, "exceptions": errors}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        grown = f" grown to {size:,} records;" if size else ""
        print(f"{args.db.name} (dashboard of {browser.REPO.name}):{grown} {args.visits} visits per page and account; baseline Sign in p50 {baseline:.3f} s; "
              f"load average {' '.join(f'{x:.2f}' for x in load_before)} before, "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after")
        for row in rows:
            print(f"  {row['account']:<10} {row['page']:<25} p50 {row['p50_s']:6.3f} s  max {row['max_s']:6.3f} s  "
                  f"x{row['ratio_to_sign_in']:.2f} of Sign in")
        for where, shown in errors.items():
            print(f"  EXCEPTION on {where}: {shown[0][:200]}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
