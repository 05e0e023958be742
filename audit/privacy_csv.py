"""CSV cells safe to open in a spreadsheet: OWASP's rule against formula injection.

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
read by spreadsheet programs as a formula (``=HYPERLINK(...)``, ``@SUM(...)``, DDE
payloads). Every CSV facetrail writes goes through :func:`safe_cell` (or
:func:`safe_rows`): such a cell gets a leading ``'``, which spreadsheets show as text
and never evaluate. The text itself is kept: a reader who strips the leading quote of
a neutralised cell gets the value back. Numbers (``int``/``float``) are written as
they are: a negative number is a number, not a formula.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["FORMULA_STARTS", "safe_cell", "safe_rows"]

#: What a cell may not start with (OWASP CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Return ``value`` with a leading ``'`` if it is text a spreadsheet would take for a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_rows(rows: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """Yield each row with every cell passed through :func:`safe_cell`."""
    for row in rows:
        yield {k: safe_cell(v) for k, v in row.items()}
