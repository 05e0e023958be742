"""1:N rates from a system's own candidate lists: rank-1, FNIR and FPIR per probe group (the ACLU design).

A candidate file is a CSV with the header ``probe,candidate_subject,rank,score``: for
each search (``probe``, an image of the manifest), the gallery subjects the system
returned, ranked (1 is its best), with its score. Every probe selected (every image
of the manifest, or those matching a pattern) is a search; one with no line in the
file returned no candidate. The gallery is named by its manifest (its subjects and
size; no image is read).

Definitions are those of :mod:`audit.evaluation.identification`, on the system's
lists: a search is *mated* when the probe's subject is in the gallery; its rank-1 hit
is a rank-1 candidate who is that subject; it is a miss at a threshold (FNIR) unless
that hit is within the threshold. Every search also counts as a *non-mated* one
against the gallery without the probe's own subject (candidates of that subject are
left out): a false positive at a threshold (FPIR) when any other candidate is within
it. A list cut short by the system's own threshold cannot show candidates beyond it:
FPIR at looser thresholds than the system's cut-off is then a lower bound (the run
records the least alike score listed). Intervals are Wilson intervals over searches.

Problems are :class:`~audit.evaluation.scorefiles.ScoreFileError` naming the line: an
unknown header, a probe the manifest lacks (or that is not among the probes), a
subject the gallery lacks, a rank that is not a positive integer, a score that is not a
finite number, a rank given twice for one probe, ranks out of order with the scores
(a wrong ``--score-direction`` shows up here).
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit.evaluation.config import ScoreConvention
from audit.evaluation.groups import MultiLabel
from audit.evaluation.identification import _probe_groups, identification_counts
from audit.evaluation.scorefiles import ScoreFileError

__all__ = ["CANDIDATE_HEADER", "CandidateLists", "candidate_rates", "read_candidates"]

#: The header of a candidate file.
CANDIDATE_HEADER = ("probe", "candidate_subject", "rank", "score")


@dataclass(frozen=True, eq=False)
class CandidateLists:
    """Per probe, what the system returned: the rank-1 subject and score, the best mate and non-mate scores."""

    path: Path
    """The file."""
    sha256: str
    """SHA-256 of its bytes."""
    probes: np.ndarray
    """``(n,)`` manifest rows of the probes (every search, listed or not)."""
    rank1_is_mate: np.ndarray
    """Whether the rank-1 candidate is the probe's subject."""
    rank1_value: np.ndarray
    """Score of the rank-1 candidate (NaN when nothing was returned)."""
    best_non_mate: np.ndarray
    """The most alike score of a candidate who is not the probe's subject (NaN when none)."""
    lines: int
    """Candidate lines read."""
    least_alike: float
    """The least alike score listed (the system's own cut-off is at least there)."""


def _fail(path: Path, line: int, problem: str) -> ScoreFileError:
    return ScoreFileError(f"{path.name} line {line}: {problem}")


def read_candidates(
    path: str | Path,
    images: Sequence[str],
    image_subjects: Sequence[str],
    probe_rows: Sequence[int],
    gallery_subjects: set[str],
    convention: ScoreConvention,
) -> CandidateLists:
    """Read a candidate file against the manifest, the chosen probes and the gallery's subjects.

    Parameters
    ----------
    path
        The candidate CSV.
    images, image_subjects
        The manifest's image names and their subjects, in row order.
    probe_rows
        The manifest rows that are searches (in order).
    gallery_subjects
        The gallery's subjects.
    convention
        The scores' direction (similarity or distance).

    Raises
    ------
    ScoreFileError
        For the first problem (see the module docstring).
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise ScoreFileError(f"{path}: no such candidate file")
    direction = convention.direction
    image_index = {name: i for i, name in enumerate(images)}
    probe_pos = {int(r): k for k, r in enumerate(probe_rows)}
    n = len(probe_pos)
    entries: dict[int, dict[int, tuple[str, float, int]]] = {}
    least = math.inf
    count = 0
    with open(source, "rb") as raw:
        digest = hashlib.file_digest(raw, "sha256").hexdigest()
    with open(source, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip().lower() for h in header) != CANDIDATE_HEADER:
            raise _fail(source, 1, f"unknown candidate file format: expected the header {','.join(CANDIDATE_HEADER)!r}, "
                                   f"found {','.join(header or [])[:80]!r}")
        for line, fields in enumerate(reader, start=2):
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) != 4:
                raise _fail(source, line, f"expected 4 comma-separated fields ({','.join(CANDIDATE_HEADER)}), "
                                          f"found {len(fields)}")
            probe, subject, rank_text, score_text = (f.strip() for f in fields)
            row = image_index.get(probe)
            if row is None:
                raise _fail(source, line, f"probe {probe!r} is not an image of the manifest")
            if row not in probe_pos:
                raise _fail(source, line, f"probe {probe!r} is not among the probes searched (see the probe pattern)")
            if subject not in gallery_subjects:
                raise _fail(source, line, f"candidate_subject {subject!r} is not a subject of the gallery")
            try:
                rank = int(rank_text)
            except ValueError as err:
                raise _fail(source, line, f"rank {rank_text!r} is not a whole number") from err
            if rank < 1:
                raise _fail(source, line, f"rank {rank} is not 1 or more")
            try:
                score = float(score_text)
            except ValueError as err:
                raise _fail(source, line, f"score {score_text!r} is not a number") from err
            if not math.isfinite(score):
                raise _fail(source, line, f"score {score_text!r} is not a finite number")
            ranks = entries.setdefault(row, {})
            if rank in ranks:
                raise _fail(source, line, f"probe {probe!r} has rank {rank} twice (first on line {ranks[rank][2]})")
            ranks[rank] = (subject, score, line)
            least = min(least, direction * score)
            count += 1
    rank1_is_mate = np.zeros(n, dtype=bool)
    rank1_value = np.full(n, np.nan)
    best_non = np.full(n, np.nan)
    for row, ranks in entries.items():
        k = probe_pos[row]
        own = image_subjects[row]
        ordered = sorted(ranks.items())
        for (r0, (_, s0, _l0)), (r1, (_, s1, l1)) in zip(ordered, ordered[1:], strict=False):
            if direction * s1 > direction * s0:
                raise _fail(source, l1, f"rank {r1} scores more alike than rank {r0} for probe {images[row]!r}: the "
                                        "ranks, or the score direction, are wrong")
        r_first, (subject1, score1, _) = ordered[0]
        if r_first == 1:
            rank1_is_mate[k] = subject1 == own
            rank1_value[k] = score1
        others = [direction * s for _, (subject, s, _) in ordered if subject != own]
        if others:
            best_non[k] = direction * max(others)
    return CandidateLists(source, digest, np.asarray(list(probe_pos), dtype=np.int64), rank1_is_mate, rank1_value,
                          best_non, count, direction * least if math.isfinite(least) else math.nan)


def candidate_rates(
    lists: CandidateLists,
    probe_subjects: Sequence[str],
    gallery_subjects: set[str],
    gallery_size: int,
    thresholds: Mapping[str, float],
    convention: ScoreConvention,
    *,
    probe_labels: pd.DataFrame | None = None,
    by: Sequence[Sequence[str]] = (),
    multi_label: MultiLabel = "combined",
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """Rank-1 rate, FNIR and FPIR overall and per probe group, as :func:`~audit.evaluation.identification.identification_rates`.

    Parameters
    ----------
    lists
        The system's candidate lists.
    probe_subjects
        The subject of each probe (``lists.probes`` order).
    gallery_subjects, gallery_size
        The gallery's subjects and number of images.
    thresholds
        Name -> threshold in the system's units.
    convention
        The scores' direction.
    probe_labels, by, multi_label
        Probe groups.
    confidence
        Interval coverage.
    """
    direction = convention.direction
    n = lists.probes.size
    mated_all = np.array([s in gallery_subjects for s in probe_subjects], dtype=bool)
    with np.errstate(invalid="ignore"):
        rank1_key = np.where(np.isnan(lists.rank1_value), -np.inf, direction * lists.rank1_value)
        non_key = np.where(np.isnan(lists.best_non_mate), -np.inf, direction * lists.best_non_mate)
    rank1 = mated_all & lists.rank1_is_mate
    gallery = {"gallery_size": int(gallery_size), "gallery_subjects": len(gallery_subjects)}
    rows: list[dict[str, Any]] = []
    for grouping, group, name, m in _probe_groups(n, probe_labels, by, multi_label):
        mated = m & mated_all
        n_mated, n_non = int(mated.sum()), int(m.sum())
        hits = int((rank1 & mated).sum())
        for tname, t in thresholds.items():
            tk = direction * float(t)
            misses = n_mated - int((mated & rank1 & (rank1_key >= tk)).sum())
            false_pos = int((m & (non_key >= tk)).sum())
            rows.append({
                "grouping": grouping,
                "group": group,
                "group_name": name,
                "threshold_name": tname,
                "threshold": float(t),
                "similarity_threshold": convention.similarity_threshold(float(t)),
                **gallery,
                **identification_counts(n_mated, hits, misses, n_non, false_pos, confidence),
            })
    return rows
