"""The data model of an accountability report: sections of facts, tables, figures and missing items.

A :class:`Report` is what the renderers (:mod:`audit.reports.render`) turn into JSON, HTML
or PDF; the counting that fills it lives in :mod:`audit.reports.query` and
:mod:`audit.reports.sections`. Every block has a stable ``id`` so that a reader (or a
test) can find a number in the JSON and check it against the log.

Values are plain JSON scalars (``int``, ``float``, ``str``, ``bool``, ``None``). A count
hidden by small-cell suppression is the string ``"< k"``; a count released with
differential-privacy noise is a plain integer, and the report says so in its privacy
statement. Nothing here is ever rendered as markup: the HTML renderer escapes every
string, whoever wrote it (the log, the evaluation, the deployer's ``report.toml``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "NOT_AVAILABLE",
    "Block",
    "Fact",
    "Facts",
    "Figure",
    "Missing",
    "Report",
    "Section",
    "Table",
    "Text",
    "not_available",
]

#: The prefix of every section part that waits for data this deployment does not have yet.
NOT_AVAILABLE = "not yet available in this deployment"


def not_available(what: str) -> str:
    """``"not yet available in this deployment: <what>"``: never a blank."""
    return f"{NOT_AVAILABLE}: {what}"


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text (never markup)."""

    text: str
    """The paragraph."""
    kind: Literal["text"] = "text"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"kind": self.kind, "text": self.text}


@dataclass(frozen=True)
class Missing:
    """Something the report must say and cannot: a ``report.toml`` key not given, or data not yet recorded."""

    id: str
    """Stable id (the ``report.toml`` key, or what is missing)."""
    label: str
    """What the reader would have read here."""
    reason: str
    """Why it is missing (``missing from report.toml: ...``, ``not yet available in this deployment: ...``)."""
    kind: Literal["missing"] = "missing"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"kind": self.kind, "id": self.id, "label": self.label, "reason": self.reason}


@dataclass(frozen=True)
class Fact:
    """One labelled value."""

    id: str
    """Stable id within its :class:`Facts` block."""
    label: str
    """What the value is."""
    value: Any
    """A JSON scalar (``"< k"`` when suppressed)."""
    unit: str = ""
    """Unit or a short qualifier shown after the value (``"%"``, ``"hours"``)."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"id": self.id, "label": self.label, "value": self.value, "unit": self.unit}


@dataclass(frozen=True)
class Facts:
    """A list of labelled values."""

    id: str
    """Stable id within the report."""
    items: tuple[Fact, ...]
    """The values."""
    title: str = ""
    """Optional heading."""
    kind: Literal["facts"] = "facts"

    def value(self, fact_id: str) -> Any:
        """Return the value of fact ``fact_id``.

        Raises
        ------
        KeyError
            No such fact.
        """
        for f in self.items:
            if f.id == fact_id:
                return f.value
        raise KeyError(fact_id)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"kind": self.kind, "id": self.id, "title": self.title, "items": [f.to_dict() for f in self.items]}


@dataclass(frozen=True)
class Table:
    """A table: named columns, one dict per row."""

    id: str
    """Stable id within the report."""
    title: str
    """Heading."""
    columns: tuple[tuple[str, str], ...]
    """``(key, label)`` of each column, in order."""
    rows: tuple[Mapping[str, Any], ...]
    """Rows: column key -> JSON scalar."""
    note: str = ""
    """A sentence under the table (what the numbers mean)."""
    empty: str = "none"
    """What an empty table says instead of nothing (``"none in this period"``)."""
    kind: Literal["table"] = "table"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"kind": self.kind, "id": self.id, "title": self.title,
                "columns": [{"key": k, "label": label} for k, label in self.columns],
                "rows": [dict(r) for r in self.rows], "note": self.note, "empty": self.empty}


@dataclass(frozen=True)
class Figure:
    """A chart: the data it draws and the name of the figure function that draws it (:mod:`audit.reports.figures`)."""

    id: str
    """Stable id within the report."""
    title: str
    """Heading."""
    figure: str
    """Name of the function in :mod:`audit.reports.figures` that draws it."""
    data: Mapping[str, Any]
    """The figure function's keyword arguments (JSON-ready)."""
    caption: str = ""
    """What the chart shows."""
    kind: Literal["figure"] = "figure"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"kind": self.kind, "id": self.id, "title": self.title, "figure": self.figure,
                "data": dict(self.data), "caption": self.caption}


Block = Text | Missing | Facts | Table | Figure


@dataclass(frozen=True)
class Section:
    """One section of a report."""

    id: str
    """Stable id (``usage``, ``accuracy``, ``integrity``, ...)."""
    title: str
    """Heading."""
    references: tuple[str, ...]
    """The provisions the section answers (``RCW 43.386.020(1)(g)``, ...)."""
    blocks: tuple[Block, ...]
    """Its content, in order (never empty: a section without data says why)."""

    def block(self, block_id: str) -> Block:
        """Return the block with this id.

        Raises
        ------
        KeyError
            No such block.
        """
        for b in self.blocks:
            if getattr(b, "id", None) == block_id:
                return b
        raise KeyError(f"section {self.id} has no block {block_id!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"id": self.id, "title": self.title, "references": list(self.references),
                "blocks": [b.to_dict() for b in self.blocks]}


@dataclass(frozen=True)
class Report:
    """A whole report: what it covers, how it was computed, and its sections."""

    title: str
    """Title (the template's name and the deployment's)."""
    template: str
    """``rcw-43.386``, ``eu-ai-act-26``, ``oakland-9.64`` or ``full``."""
    about: Mapping[str, Any]
    """Period, generation time, the log state (tree size and root), public or not, privacy parameters."""
    sections: tuple[Section, ...]
    """The template's sections, in order."""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    """Shown at the top (an integrity fault, say)."""

    def section(self, section_id: str) -> Section:
        """Return the section with this id.

        Raises
        ------
        KeyError
            No such section.
        """
        for s in self.sections:
            if s.id == section_id:
                return s
        raise KeyError(f"the report has no section {section_id!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (what ``--format json`` writes)."""
        return {"title": self.title, "template": self.template, "about": dict(self.about),
                "warnings": list(self.warnings), "sections": [s.to_dict() for s in self.sections]}


def table_rows(table: Table, key: str) -> dict[Any, Mapping[str, Any]]:
    """Index a table's rows by one column (a convenience for readers of the model)."""
    return {r[key]: r for r in table.rows}


def columns(*pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """Return a column spec from ``(key, label)`` pairs."""
    return tuple(pairs)


def rows_of(records: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """Rows as an immutable tuple of dicts."""
    return tuple(dict(r) for r in records)
