"""What an evaluation measures: thresholds, groupings, bands and the frozen :class:`EvaluationConfig`.

Thresholds are cosine distances (a pair matches iff ``1 - similarity <=
threshold``). A :class:`ThresholdSpec` is a fixed distance or a target FMR to
calibrate to on the data evaluated. Its ``source`` uses the one vocabulary of
:class:`core.config.ThresholdSource` (:data:`ThresholdKind`): ``"calibrated"``,
``"user"`` or ``"deepface_builtin"``. The model's own threshold, reported as
``"default"``, carries the kind of the model configuration's threshold (a
shipped or stored calibration, or deepface's built-in value), so a row says
where its number comes from. Runs stored before this vocabulary say
``"model_default"``; :func:`threshold_kind` reads them.

Text forms (the CLI's, also handy in notebooks): :func:`parse_threshold`
(``"fmr=1e-3"``, ``"0.07"``, ``"score=80"`` on a system's own scores), :func:`parse_thresholds` (adds the ``"default"``
keyword), :func:`parse_groupings` (``"sex,race,sex*race"``) and
:func:`parse_band` (``"age=40,50,60"``). Every malformed value is a
:class:`core.errors.BadInput` whose message names it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from audit.evaluation.groups import MultiLabel
from core.config import check_threshold
from core.errors import BadInput

__all__ = [
    "DEFAULT_THRESHOLDS",
    "THRESHOLD_KINDS",
    "Band",
    "BadGrouping",
    "EvaluationConfig",
    "ScoreConvention",
    "ThresholdKind",
    "ThresholdSpec",
    "check_target_fmr",
    "parse_band",
    "parse_groupings",
    "parse_threshold",
    "parse_thresholds",
    "threshold_kind",
]

#: Where a threshold comes from: the vocabulary of :class:`core.config.ThresholdSource.kind`.
ThresholdKind = Literal["calibrated", "user", "deepface_builtin"]
THRESHOLD_KINDS: tuple[str, ...] = get_args(ThresholdKind)

#: The name stored runs used for the model's threshold before the vocabularies were one.
_LEGACY_DEFAULT = "model_default"


def threshold_kind(kind: str, model_config: Mapping[str, Any] | None = None) -> ThresholdKind:
    """Return ``kind`` in the one vocabulary, reading the old ``"model_default"`` of stored runs.

    A run stored as ``"model_default"`` was evaluated at its model configuration's
    threshold, so the kind is that configuration's ``threshold_source.kind``; a run
    without a model configuration had its default named by the caller (``"user"``).

    Raises
    ------
    ValueError
        For a kind neither vocabulary knows (a damaged record).
    """
    if kind in THRESHOLD_KINDS:
        return cast(ThresholdKind, kind)
    if kind == _LEGACY_DEFAULT:
        source = dict((model_config or {}).get("threshold_source") or {})
        found = source.get("kind")
        return cast(ThresholdKind, found) if found in THRESHOLD_KINDS else "user"
    raise ValueError(f"unknown threshold source {kind!r}; expected one of {THRESHOLD_KINDS}")


def check_target_fmr(value: str | float, what: str = "target FMR") -> float:
    """Return ``value`` as a false-match rate strictly between 0 and 1.

    Raises
    ------
    BadInput
        Not a number, not finite, or outside (0, 1).
    """
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise BadInput(f"{what} {value!r} is not a number") from err
    if not (math.isfinite(number) and 0.0 < number < 1.0):
        raise BadInput(f"{what} must be in (0, 1), got {value!r}")
    return number


@dataclass(frozen=True)
class ThresholdSpec:
    """A decision threshold to evaluate at: a fixed distance or a target FMR to calibrate to."""

    name: str
    """Label in results, e.g. ``"default"``, ``"fmr=0.001"``, ``"0.07"``."""
    source: ThresholdKind
    """Where the threshold comes from (see :data:`ThresholdKind`)."""
    distance: float | None = None
    """Cosine-distance threshold of facetrail's engine (``None`` until calibrated, or for a system's scores)."""
    target_fmr: float | None = None
    """For calibrated thresholds, the overall FMR to reach."""
    score: float | None = None
    """A threshold on a system's own scores (``score=80``; a run from a score file), in its units."""

    def __post_init__(self) -> None:
        if self.source not in THRESHOLD_KINDS:
            raise ValueError(f"threshold source must be one of {THRESHOLD_KINDS}, got {self.source!r}")
        if self.distance is not None and self.score is not None:
            raise ValueError("a threshold is a cosine distance or a system's score, not both")

    @property
    def value(self) -> float | None:
        """The threshold in its run's units: the distance, or the system's score (``None`` until calibrated)."""
        return self.distance if self.distance is not None else self.score

    def resolved(self, value: float, *, system_score: bool) -> ThresholdSpec:
        """Return this threshold with its value (a calibrated one's, say), in the run's units."""
        if system_score:
            return ThresholdSpec(self.name, self.source, None, self.target_fmr, float(value))
        return ThresholdSpec(self.name, self.source, float(value), self.target_fmr, None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThresholdSpec:
        """Rebuild from ``__dict__`` form (reads the old ``"model_default"`` source)."""
        d = dict(data)
        d["source"] = threshold_kind(str(d.get("source")))
        return cls(**d)


def parse_threshold(text: str) -> ThresholdSpec:
    """Parse ``"fmr=1e-3"`` (calibrate on the data), ``"0.07"`` (a cosine distance) or ``"score=80"``.

    ``score=V`` is a threshold on a system's own scores (an evaluation of a score file),
    in that system's units and direction.

    Raises
    ------
    BadInput
        If the text is none of these, not finite, or out of range (FMR in (0, 1), distance in [0, 2]).
    """
    raw = text.strip()
    if raw.lower().startswith("fmr="):
        target = check_target_fmr(raw[4:], f"target FMR in threshold {text!r}")
        return ThresholdSpec(name=f"fmr={target:g}", source="calibrated", target_fmr=target)
    if raw.lower().startswith("score="):
        try:
            score = float(raw[6:])
        except ValueError as err:
            raise BadInput(f"threshold {text!r}: the score after 'score=' is not a number") from err
        if not math.isfinite(score):
            raise BadInput(f"threshold {text!r}: the score is not a finite number")
        return ThresholdSpec(name=f"score={score:g}", source="user", score=score)
    try:
        value = float(raw)
    except ValueError as err:
        raise BadInput(f"threshold {text!r} is neither 'fmr=<rate>', 'score=<value>' nor a cosine distance") from err
    distance = check_threshold(value)  # the engine's own rule: finite, in [0, 2]
    return ThresholdSpec(name=f"{distance:g}", source="user", distance=distance)


#: What an evaluation reports besides the model's threshold when no threshold is named.
DEFAULT_THRESHOLDS: tuple[ThresholdSpec, ...] = (
    ThresholdSpec("fmr=0.001", "calibrated", target_fmr=1e-3),
    ThresholdSpec("fmr=0.0001", "calibrated", target_fmr=1e-4),
)


def parse_thresholds(values: Sequence[str]) -> tuple[tuple[ThresholdSpec, ...], bool]:
    """Parse named thresholds; return them and whether the model's own (``"default"``) is wanted.

    Nothing named means the model's threshold and :data:`DEFAULT_THRESHOLDS`. The word
    ``default`` among the values asks for the model's threshold beside the others.

    Raises
    ------
    BadInput
        For a value :func:`parse_threshold` refuses.
    """
    if not values:
        return DEFAULT_THRESHOLDS, True
    specs: dict[str, ThresholdSpec] = {}
    include_default = False
    for value in values:
        if value.strip().lower() == "default":
            include_default = True
            continue
        spec = parse_threshold(value)
        specs.setdefault(spec.name, spec)
    return tuple(specs.values()), include_default


@dataclass(frozen=True)
class ScoreConvention:
    """What a run's scores and thresholds are: facetrail's cosine distances, or a system's own scores."""

    kind: Literal["cosine", "similarity", "distance"] = "cosine"
    """``cosine``: facetrail's engine (a pair matches iff ``1 - similarity <= threshold``);
    ``similarity``: a system's scores, higher is more alike (match iff ``score >= threshold``);
    ``distance``: a system's scores, lower is more alike (match iff ``score <= threshold``)."""

    def __post_init__(self) -> None:
        if self.kind not in ("cosine", "similarity", "distance"):
            raise BadInput(f"score direction must be 'similarity' or 'distance', not {self.kind!r}")

    @property
    def direction(self) -> Literal[1, -1]:
        """+1: a pair matches iff its value >= the threshold; -1: iff it is <= the threshold."""
        return 1 if self.kind == "similarity" else -1

    @property
    def system_scores(self) -> bool:
        """Whether thresholds are a system's scores (``ThresholdSpec.score``) rather than cosine distances."""
        return self.kind != "cosine"

    def similarity_threshold(self, threshold: float) -> float:
        """Return the threshold as a similarity: ``1 - t`` for cosine distances, ``t`` for similarity scores, else NaN."""
        if self.kind == "cosine":
            return 1.0 - threshold
        return threshold if self.kind == "similarity" else math.nan

    def describe(self) -> dict[str, str]:
        """Return the run metadata's ``score`` and ``threshold_convention``."""
        if self.kind == "cosine":
            return {"score": "cosine similarity of embeddings quantised to integers (exact counts)",
                    "threshold_convention": "cosine distance; a pair matches iff 1 - similarity <= threshold"}
        rule = ">=" if self.kind == "similarity" else "<="
        return {"score": f"the system's own {self.kind} scores, as read from its score file",
                "threshold_convention": f"the system's {self.kind} score; a pair matches iff score {rule} threshold"}


class BadGrouping(BadInput, ValueError):
    """A grouping that is not ``col`` or ``a*b`` (bad input, and a malformed argument)."""


def parse_groupings(values: Sequence[str] | None) -> tuple[tuple[str, ...], ...]:
    """Parse groupings: comma-separated, ``a*b`` for an intersection (``"sex,race,sex*race"``).

    Raises
    ------
    BadGrouping
        On an empty column name (``"sex*"``).
    """
    out: list[tuple[str, ...]] = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            cols = tuple(c.strip() for c in part.split("*"))
            if any(not c for c in cols):
                raise BadGrouping(f"bad grouping {part!r}: expected a label column or columns joined by '*'")
            if cols not in out:
                out.append(cols)
    return tuple(out)


@dataclass(frozen=True)
class Band:
    """Bands of a numeric label column (``age=40,50,60`` adds ``age_band``: ``<40``, ``40-50``, ...)."""

    column: str
    """The numeric label column."""
    edges: tuple[float, ...]
    """Increasing, finite band edges."""

    def __post_init__(self) -> None:
        if not self.column:
            raise BadInput("a band needs a label column")
        if not self.edges or not all(math.isfinite(e) for e in self.edges):
            raise BadInput(f"band edges of {self.column!r} must be finite numbers, got {list(self.edges)}")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise BadInput(f"band edges of {self.column!r} must increase, got {list(self.edges)}")

    @property
    def name(self) -> str:
        """The banded column's name."""
        return f"{self.column}_band"


def parse_band(text: str) -> Band:
    """Parse ``"<label column>=e1,e2,..."``.

    Raises
    ------
    BadInput
        Without ``=`` or edges, with edges that are not increasing finite numbers.
    """
    column, _, edges = text.partition("=")
    if not column.strip() or not edges.strip():
        raise BadInput(f"band {text!r}: expected '<label column>=e1,e2,...'")
    try:
        values = tuple(float(e) for e in edges.split(","))
    except ValueError as err:
        raise BadInput(f"band {text!r}: edges must be numbers") from err
    return Band(column.strip(), values)


@dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate and how (results are in :class:`audit.evaluation.report.EvaluationReport`)."""

    by: tuple[tuple[str, ...], ...] = ()
    """Groupings: each a tuple of label columns (``("sex",)``, ``("sex", "race")``)."""
    thresholds: tuple[ThresholdSpec, ...] = DEFAULT_THRESHOLDS
    """Thresholds besides the model's own."""
    default_threshold: float | None = None
    """The model's distance threshold (reported as ``"default"``); taken from the model
    configuration when ``None`` and :attr:`include_default` is set."""
    default_source: ThresholdKind = "user"
    """Where :attr:`default_threshold` comes from (the model configuration's kind when taken from it)."""
    include_default: bool = True
    """Report the model's threshold as ``"default"``."""
    multi_label: MultiLabel = "combined"
    """Policy for multi-valued labels (see :mod:`audit.evaluation.groups`)."""
    cross_group: bool = True
    """Also report cross-group impostor cells (``combined`` policy only)."""
    bootstrap: int = 1000
    """Subject bootstrap resamples (0: no intervals)."""
    confidence: float = 0.95
    """Interval coverage."""
    seed: int = 0
    """Bootstrap seed."""
    min_genuine_pairs: int = 30
    """Fewer genuine pairs than this flags a cell ``low_count``."""
    min_impostor_pairs: int = 1000
    """Fewer impostor pairs than this flags a cell ``low_count``."""
    min_subjects: int = 10
    """Fewer subjects than this flags a cell ``low_count``."""
    hist_bins: int = 2000
    """Score histogram resolution over similarity [-1, 1]."""

    def __post_init__(self) -> None:
        if self.bootstrap < 0:
            raise BadInput(f"bootstrap resamples must be >= 0, got {self.bootstrap}")
        if not 0.0 < self.confidence < 1.0:
            raise BadInput(f"confidence must be in (0, 1), got {self.confidence}")
        if self.multi_label not in ("combined", "explode"):
            raise BadInput(f"multi_label must be 'combined' or 'explode', not {self.multi_label!r}")
        if self.default_source not in THRESHOLD_KINDS:
            raise ValueError(f"default_source must be one of {THRESHOLD_KINDS}, got {self.default_source!r}")
        if self.default_threshold is not None:
            check_threshold(self.default_threshold)

    def resolved_thresholds(self) -> tuple[ThresholdSpec, ...]:
        """Return the model's threshold (if any) followed by the other thresholds, without duplicates."""
        out: list[ThresholdSpec] = []
        if self.include_default and self.default_threshold is not None:
            out.append(ThresholdSpec("default", self.default_source, float(self.default_threshold)))
        names = {t.name for t in out}
        for t in self.thresholds:
            if t.name not in names:
                out.append(t)
                names.add(t.name)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "by": [list(b) for b in self.by],
            "thresholds": [t.__dict__.copy() for t in self.thresholds],
            "default_threshold": self.default_threshold,
            "default_source": self.default_source,
            "include_default": self.include_default,
            "multi_label": self.multi_label,
            "cross_group": self.cross_group,
            "bootstrap": self.bootstrap,
            "confidence": self.confidence,
            "seed": self.seed,
            "min_genuine_pairs": self.min_genuine_pairs,
            "min_impostor_pairs": self.min_impostor_pairs,
            "min_subjects": self.min_subjects,
            "hist_bins": self.hist_bins,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationConfig:
        """Inverse of :meth:`to_dict` (also reads configs stored before ``default_source`` existed)."""
        d = dict(data)
        d["by"] = tuple(tuple(b) for b in d.get("by", ()))
        d["thresholds"] = tuple(ThresholdSpec.from_dict(t) for t in d.get("thresholds", ()))
        return cls(**d)
