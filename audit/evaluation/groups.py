"""Demographic labels, label policies and the groups an evaluation reports on.

Every image carries a label per demographic column. Labels are normalised once:
missing, empty or whitespace-only values become the string ``"unknown"`` (they are
reported as their own group, never dropped). A *multi-valued* label such as
``"Black; Hispanic"`` (congress) or ``"african,caucasian"`` (LFW) is handled by an
explicit policy:

``"combined"`` (default)
    The combined value is a group of its own (``"Black; Hispanic"``), so every image
    is in exactly one group per column and cross-group comparisons are defined.
``"explode"``
    The image counts in each listed group (``"Black"`` and ``"Hispanic"``). Groups
    may then overlap; cross-group cells are not reported.

Internally every image gets one *fine cell*: the joint combination of its
(normalised, combined) values over all label columns in use. Any group under
either policy, and any intersection of columns, is a set of fine cells, so all
counts are computed once per pair of fine cells and then summed.

A :class:`PairCell` is one reported cell of pairs: everyone (``all``), the pairs of
two people of one group (``within``), or of two different groups (``cross``), as a
mask over the unordered fine-cell pairs (:func:`pair_cells`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from audit.evaluation.metrics import cell_pair_index

__all__ = [
    "UNKNOWN",
    "MultiLabel",
    "Group",
    "FineCells",
    "normalise_labels",
    "split_multi",
    "is_multi_valued",
    "fine_cells",
    "groups_for",
    "add_bands",
    "grouping_name",
    "PairCell",
    "pair_cells",
]

#: The label used for missing or empty values.
UNKNOWN = "unknown"

MultiLabel = Literal["combined", "explode"]

_SPLIT = re.compile(r"\s*[;,]\s*")


def normalise_labels(labels: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Return ``labels[columns]`` as stripped strings with missing values set to ``"unknown"``.

    Parameters
    ----------
    labels
        One row per image.
    columns
        The demographic columns to keep.

    Raises
    ------
    KeyError
        If a column is absent.
    """
    missing = [c for c in columns if c not in labels.columns]
    if missing:
        raise KeyError(f"label column(s) not found: {', '.join(missing)}")
    out = {}
    for col in columns:
        series = labels[col]
        values = []
        for v in series.tolist():
            if v is None or (isinstance(v, float) and np.isnan(v)):
                values.append(UNKNOWN)
                continue
            text = str(v).strip()
            values.append(text if text else UNKNOWN)
        out[col] = values
    return pd.DataFrame(out, index=labels.index)


def split_multi(value: str) -> tuple[str, ...]:
    """Split a multi-valued label (``"Black; Hispanic"``, ``"african,caucasian"``) into sorted parts."""
    parts = sorted({p for p in _SPLIT.split(value.strip()) if p})
    return tuple(parts) if parts else (UNKNOWN,)


def is_multi_valued(value: str) -> bool:
    """Whether ``value`` lists more than one group."""
    return len(split_multi(value)) > 1


@dataclass(frozen=True)
class Group:
    """A demographic group: values of one or more label columns."""

    columns: tuple[str, ...]
    """The label columns that define the group (empty for the whole population)."""
    values: tuple[str, ...]
    """One value per column."""
    cells: frozenset[int]
    """Fine cells (see :class:`FineCells`) whose images belong to the group."""

    def as_dict(self) -> dict[str, str]:
        """Return ``{column: value}``."""
        return dict(zip(self.columns, self.values, strict=True))

    @property
    def name(self) -> str:
        """A readable name, e.g. ``"sex=F, race=Black"`` (``"all"`` for the whole population)."""
        if not self.columns:
            return "all"
        return ", ".join(f"{c}={v}" for c, v in zip(self.columns, self.values, strict=True))


@dataclass(frozen=True)
class FineCells:
    """The joint label combination of each image."""

    columns: tuple[str, ...]
    """Label columns, in order."""
    codes: np.ndarray
    """``(n_images,)`` int: the fine cell of each image."""
    values: tuple[tuple[str, ...], ...]
    """For each fine cell, its normalised value per column."""

    @property
    def n_cells(self) -> int:
        """Number of distinct fine cells."""
        return len(self.values)


def fine_cells(labels: pd.DataFrame, columns: Sequence[str]) -> FineCells:
    """Assign each image its fine cell over ``columns`` (labels normalised first).

    Parameters
    ----------
    labels
        One row per image, in the same order as the embeddings.
    columns
        Every label column any grouping will use.
    """
    cols = tuple(dict.fromkeys(columns))
    norm = normalise_labels(labels, cols)
    if not cols:
        return FineCells(columns=(), codes=np.zeros(len(labels), dtype=np.int64), values=((),))
    keys = list(zip(*(norm[c].tolist() for c in cols), strict=True))
    uniq = sorted(set(keys))
    index = {k: i for i, k in enumerate(uniq)}
    codes = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
    return FineCells(columns=cols, codes=codes, values=tuple(uniq))


def groups_for(fine: FineCells, spec: Sequence[str], multi_label: MultiLabel = "combined") -> list[Group]:
    """List the groups of a grouping ``spec`` (one column, or several for an intersection).

    Parameters
    ----------
    fine
        Fine cells over at least the columns of ``spec``.
    spec
        Columns, e.g. ``("sex",)`` or ``("sex", "race")``. Empty means the whole population.
    multi_label
        ``"combined"`` keeps a multi-valued label as its own group; ``"explode"`` puts
        the image in each listed group.

    Raises
    ------
    ValueError
        If a column of ``spec`` is not among ``fine.columns`` or the policy is unknown.
    """
    if multi_label not in ("combined", "explode"):
        raise ValueError(f"multi_label must be 'combined' or 'explode', not {multi_label!r}")
    spec = tuple(spec)
    missing = [c for c in spec if c not in fine.columns]
    if missing:
        raise ValueError(f"grouping column(s) {missing} are not among the label columns {fine.columns}")
    pos = [fine.columns.index(c) for c in spec]
    members: dict[tuple[str, ...], set[int]] = {}
    for code, values in enumerate(fine.values):
        per_col: list[tuple[str, ...]] = []
        for p in pos:
            v = values[p]
            per_col.append(split_multi(v) if multi_label == "explode" else (v,))
        combos: list[tuple[str, ...]] = [()]
        for options in per_col:
            combos = [c + (o,) for c in combos for o in options]
        for combo in combos:
            members.setdefault(combo, set()).add(code)
    return [Group(columns=spec, values=k, cells=frozenset(v)) for k, v in sorted(members.items())]


def add_bands(labels: pd.DataFrame, column: str, edges: Sequence[float], name: str | None = None) -> pd.DataFrame:
    """Return a copy of ``labels`` with a banded version of a numeric column.

    A value ``x`` falls in band ``"lo-hi"`` when ``lo <= x < hi``; below the first edge
    the band is ``"<e0"``, from the last edge on ``">=eN"``; non-numeric or missing
    values become ``"unknown"``.

    Parameters
    ----------
    labels
        The label table.
    column
        A numeric column, e.g. ``approx_age_at_photo``.
    edges
        Increasing band edges, e.g. ``(40, 50, 60, 70)``.
    name
        Name of the new column (default ``f"{column}_band"``).

    Raises
    ------
    ValueError
        If the edges are empty or not increasing.
    """
    edges = [float(e) for e in edges]
    if not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"band edges must be non-empty and increasing, got {edges}")

    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    values = pd.to_numeric(labels[column], errors="coerce").to_numpy(dtype=float)
    out: list[str] = []
    for x in values:
        if np.isnan(x):
            out.append(UNKNOWN)
        elif x < edges[0]:
            out.append(f"<{fmt(edges[0])}")
        elif x >= edges[-1]:
            out.append(f">={fmt(edges[-1])}")
        else:
            i = int(np.searchsorted(edges, x, side="right")) - 1
            out.append(f"{fmt(edges[i])}-{fmt(edges[i + 1])}")
    result = labels.copy()
    result[name or f"{column}_band"] = out
    return result


def grouping_name(columns: Sequence[str]) -> str:
    """Name of a grouping in results: ``"sex x race"`` (``"all"`` for no columns)."""
    return " x ".join(columns) if columns else "all"


@dataclass(frozen=True, eq=False)
class PairCell:
    """One reported cell of pairs and who is in it."""

    pairing: Literal["all", "within", "cross"]
    """Everyone, two people of :attr:`group`, or one of :attr:`group` and one of :attr:`other`."""
    columns: tuple[str, ...]
    """The grouping's label columns (empty for ``all``)."""
    group: Group
    """The group (everyone for ``all``)."""
    other: Group | None
    """The other group of a ``cross`` cell."""
    mask: np.ndarray
    """``(P,)`` bool over unordered fine-cell pairs: the pairs this cell counts."""
    images: int
    """Images of the people in the cell."""
    subjects: int
    """People in the cell."""

    @property
    def grouping(self) -> str:
        """The grouping's name (see :func:`grouping_name`)."""
        return grouping_name(self.columns)


def pair_cells(
    fine: FineCells,
    subject_codes: np.ndarray,
    by: Sequence[Sequence[str]],
    multi_label: MultiLabel = "combined",
    cross_group: bool = True,
) -> list[PairCell]:
    """List the reported cells: ``all``, then per grouping its ``within`` cells and (``combined`` only) ``cross`` cells.

    Parameters
    ----------
    fine
        Fine cells of the images.
    subject_codes
        ``(n_images,)`` subject code per image.
    by
        Groupings.
    multi_label
        Label policy; cross-group cells need ``"combined"`` (groups that do not overlap).
    cross_group
        Report cross-group cells.
    """
    f = fine.n_cells
    pidx = cell_pair_index(f)
    n_p = f * (f + 1) // 2
    cell_images = np.bincount(fine.codes, minlength=f)
    subjects_in: list[set[int]] = [set() for _ in range(f)]
    for s, c in zip(subject_codes.tolist(), fine.codes.tolist(), strict=True):
        subjects_in[c].add(s)

    def mask(a: Iterable[int], b: Iterable[int]) -> np.ndarray:
        m = np.zeros(n_p, dtype=bool)
        bs = list(b)
        for x in a:
            m[pidx[x, bs]] = True
        return m

    def members(cells: Iterable[int]) -> tuple[int, int]:
        cs = list(cells)
        people: set[int] = set()
        for c in cs:
            people |= subjects_in[c]
        return int(cell_images[cs].sum()), len(people)

    everyone = Group(columns=(), values=(), cells=frozenset(range(f)))
    out = [PairCell("all", (), everyone, None, np.ones(n_p, dtype=bool), *members(everyone.cells))]
    for spec in by:
        columns = tuple(spec)
        groups = groups_for(fine, columns, multi_label)
        out += [PairCell("within", columns, g, None, mask(g.cells, g.cells), *members(g.cells)) for g in groups]
        if cross_group and multi_label == "combined":
            for i, ga in enumerate(groups):
                for gb in groups[i + 1 :]:
                    out.append(PairCell("cross", columns, ga, gb, mask(ga.cells, gb.cells), *members(ga.cells | gb.cells)))
    return out
