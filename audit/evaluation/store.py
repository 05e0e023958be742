"""Evaluation runs in DuckDB, as tidy tables: the one :class:`EvaluationStore`.

One row per run in ``eval_runs`` (run id, time, dataset name and fingerprint,
model config, code version, evaluation config, the evaluated system when it is not
facetrail's engine, and the whole run document, which holds the LFW 10-fold result)
and one tidy table per kind of result, each row tagged with its ``run_id``:
``eval_rates`` (per-group rates per threshold with intervals and the threshold's
margin), ``eval_disparity``, ``eval_inequity`` (max/min, max/geometric mean, GARBE,
FDR), ``eval_det``, ``eval_histograms``, ``eval_fta``, ``eval_identification``,
``eval_calibrations`` and ``eval_lfw_pairs`` (the LFW protocol's per-group rows; runs
stored before that table kept them in the run document, and still read from there). Group columns hold JSON objects
(``{"sex": "F"}``), so any grouping fits one schema. Runs are only ever inserted,
so a loaded report is cached per run id. The tables are created by
:mod:`core.storage.schema`; runs stored with the old threshold-source name
``"model_default"`` are read in today's vocabulary.

:meth:`EvaluationStore.list` is what the dashboard's selectors show
(:class:`StoredEvaluation`: dataset, model, date). All SQL of the evaluation
package passes through this file.
"""

from __future__ import annotations

import builtins
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from audit.evaluation.report import EvaluationReport, upgrade_rate_rows
from core.storage.connection import Database

__all__ = ["EvaluationStore", "StoredEvaluation"]


@dataclass(frozen=True)
class StoredEvaluation:
    """One stored evaluation run, as the dashboard lists it."""

    run_id: str
    """The run's id."""
    dataset: str
    """The dataset's name (``"?"`` if it was stored without one)."""
    dataset_fingerprint: str
    """The evaluated data's fingerprint."""
    embedding_key: str
    """The model configuration's embedding key."""
    model: str
    """The recognition model (``"?"`` if the run had no model configuration)."""
    created_at: str
    """When the run was made (ISO 8601)."""
    system: str | None = None
    """The evaluated system, for a run from a system's own scores (``None``: facetrail's engine)."""
    system_version: str | None = None
    """That system's version, as the auditor named it."""

    @property
    def label(self) -> str:
        """Short label for selectors: dataset, model (or system), date."""
        who = self.model if self.system is None else " ".join(filter(None, [self.system, self.system_version]))
        return f"{self.dataset} · {who} · {self.created_at[:16]}"

_JSON_COLUMNS = {"group", "other_group"}

# a group's error counts and rates with their intervals, at one threshold (by group and LFW's pairs by group)
_GROUP_RATES: tuple[tuple[str, str], ...] = (
    ("similarity_threshold", "DOUBLE"),
    ("genuine_pairs", "BIGINT"),
    ("false_non_matches", "BIGINT"),
    ("fnmr", "DOUBLE"),
    ("fnmr_lo", "DOUBLE"),
    ("fnmr_hi", "DOUBLE"),
    ("impostor_pairs", "BIGINT"),
    ("false_matches", "BIGINT"),
    ("fmr", "DOUBLE"),
    ("fmr_lo", "DOUBLE"),
    ("fmr_hi", "DOUBLE"),
)

# table -> (column, SQL type) in row order; the row dicts of EvaluationReport use the same keys
_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "eval_rates": (
        ("pairing", "VARCHAR"),
        ("grouping", "VARCHAR"),
        ("group", "JSON"),
        ("group_name", "VARCHAR"),
        ("other_group", "JSON"),
        ("other_group_name", "VARCHAR"),
        ("threshold_name", "VARCHAR"),
        ("threshold_source", "VARCHAR"),
        ("target_fmr", "DOUBLE"),
        ("threshold", "DOUBLE"),
        *_GROUP_RATES,
        ("subjects", "BIGINT"),
        ("images", "BIGINT"),
        ("low_count", "BOOLEAN"),
        ("false_match_rate", "DOUBLE"),
        ("false_non_match_rate", "DOUBLE"),
        ("eer", "DOUBLE"),
        ("interval_method", "VARCHAR"),
        ("threshold_margin", "DOUBLE"),
        ("reproducible", "BOOLEAN"),
    ),
    "eval_disparity": (
        ("grouping", "VARCHAR"),
        ("group", "JSON"),
        ("group_name", "VARCHAR"),
        ("best_group_name", "VARCHAR"),
        ("threshold_name", "VARCHAR"),
        ("threshold", "DOUBLE"),
        ("metric", "VARCHAR"),
        ("rate", "DOUBLE"),
        ("relative_to_best", "DOUBLE"),
        ("relative_lo", "DOUBLE"),
        ("relative_hi", "DOUBLE"),
        ("max_min_ratio", "DOUBLE"),
        ("max_min_ratio_lo", "DOUBLE"),
        ("max_min_ratio_hi", "DOUBLE"),
        ("flag", "BOOLEAN"),
        ("max_min_flag", "BOOLEAN"),
        ("low_count", "BOOLEAN"),
    ),
    "eval_det": (
        ("grouping", "VARCHAR"),
        ("group", "JSON"),
        ("group_name", "VARCHAR"),
        ("similarity", "DOUBLE"),
        ("threshold", "DOUBLE"),
        ("fmr", "DOUBLE"),
        ("fnmr", "DOUBLE"),
    ),
    "eval_histograms": (
        ("grouping", "VARCHAR"),
        ("group", "JSON"),
        ("group_name", "VARCHAR"),
        ("bin_lo", "DOUBLE"),
        ("bin_hi", "DOUBLE"),
        ("genuine", "BIGINT"),
        ("impostor", "BIGINT"),
    ),
    "eval_fta": (
        ("group", "JSON"),
        ("group_name", "VARCHAR"),
        ("grouping", "VARCHAR"),
        ("images", "BIGINT"),
        ("failures", "BIGINT"),
        ("fta_rate", "DOUBLE"),
    ),
    "eval_identification": (
        ("grouping", "VARCHAR"),
        ("group", "JSON"),
        ("group_name", "VARCHAR"),
        ("threshold_name", "VARCHAR"),
        ("threshold", "DOUBLE"),
        ("similarity_threshold", "DOUBLE"),
        ("gallery_size", "BIGINT"),
        ("gallery_subjects", "BIGINT"),
        ("mated_searches", "BIGINT"),
        ("rank1_hits", "BIGINT"),
        ("rank1_rate", "DOUBLE"),
        ("fnir", "DOUBLE"),
        ("fnir_lo", "DOUBLE"),
        ("fnir_hi", "DOUBLE"),
        ("nonmated_searches", "BIGINT"),
        ("false_positive_searches", "BIGINT"),
        ("fpir", "DOUBLE"),
        ("fpir_lo", "DOUBLE"),
        ("fpir_hi", "DOUBLE"),
    ),
    "eval_calibrations": (
        ("target_fmr", "DOUBLE"),
        ("threshold", "DOUBLE"),
        ("similarity_threshold", "DOUBLE"),
        ("false_matches", "BIGINT"),
        ("impostor_pairs", "BIGINT"),
        ("achieved_fmr", "DOUBLE"),
        ("false_non_matches", "BIGINT"),
        ("genuine_pairs", "BIGINT"),
        ("achieved_fnmr", "DOUBLE"),
        ("nearest_match", "DOUBLE"),
        ("nearest_non_match", "DOUBLE"),
        ("threshold_margin", "DOUBLE"),
    ),
    "eval_inequity": (
        ("grouping", "VARCHAR"),
        ("threshold_name", "VARCHAR"),
        ("threshold", "DOUBLE"),
        ("measure", "VARCHAR"),
        ("metric", "VARCHAR"),
        ("value", "DOUBLE"),
        ("lo", "DOUBLE"),
        ("hi", "DOUBLE"),
        ("groups", "BIGINT"),
        ("zero_groups", "BIGINT"),
        ("excluded_low_count", "BIGINT"),
        ("alpha", "DOUBLE"),
    ),
    "eval_lfw_pairs": (
        ("grouping", "VARCHAR"),
        ("group", "JSON"),
        ("group_name", "VARCHAR"),
        ("threshold", "DOUBLE"),
        *_GROUP_RATES,
        ("interval", "VARCHAR"),
    ),
}

# report attribute for each table
_ATTR = {
    "eval_rates": "rates",
    "eval_disparity": "disparity_rows",
    "eval_det": "det_rows",
    "eval_histograms": "histogram_rows",
    "eval_fta": "fta_rows",
    "eval_identification": "identification_rows",
    "eval_calibrations": "calibration_rows",
    "eval_inequity": "inequity_rows",
    "eval_lfw_pairs": "lfw_rows",
}


def _encode(rows: tuple[Mapping[str, Any], ...], cols: tuple[tuple[str, str], ...], run_id: str) -> pd.DataFrame:
    names = [c for c, _ in cols]
    records = []
    for i, r in enumerate(rows):
        unknown = set(r) - set(names)
        if unknown:
            raise ValueError(f"row has columns the store does not know: {sorted(unknown)}")
        rec: dict[str, Any] = {"run_id": run_id, "row_no": i}
        for c in names:
            v = r.get(c)
            rec[c] = json.dumps(v, sort_keys=True) if c in _JSON_COLUMNS and v is not None else v
        records.append(rec)
    frame = pd.DataFrame.from_records(records, columns=["run_id", "row_no", *names])
    for c, t in cols:
        if t == "DOUBLE":
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
        elif t == "BIGINT":
            frame[c] = frame[c].astype("Int64")
        elif t == "BOOLEAN":
            frame[c] = frame[c].astype("boolean")
        else:
            frame[c] = frame[c].astype("object")
    return frame


def _decode_value(v: Any, json_col: bool) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if json_col:
        return json.loads(v) if isinstance(v, str) else v
    if hasattr(v, "item"):
        return v.item()
    return v


class EvaluationStore:
    """Evaluation runs stored in the facetrail database.

    Parameters
    ----------
    db
        The database (its schema for evaluations is created on first use).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._reports: dict[str, EvaluationReport] = {}
        self._lock = threading.Lock()

    def save(self, report: EvaluationReport, *, dataset_name: str | None = None) -> str:
        """Insert a run and all its tables in one transaction; return the run id."""
        run = dict(report.run)
        run_id = str(run["run_id"])
        model_config = run.get("model_config") or {}
        with self.db.connect(transaction=True) as con:
            system = dict(run.get("system") or {})
            con.execute(
                "INSERT INTO eval_runs (run_id, created, dataset_fingerprint, dataset_name, model_config, "
                "embedding_key, code_version, config, run, system, system_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    run["created"],
                    run.get("dataset_fingerprint"),
                    dataset_name,
                    json.dumps(model_config, sort_keys=True),
                    model_config.get("embedding_key") if isinstance(model_config, dict) else None,
                    run.get("code_version"),
                    json.dumps(run.get("config", {}), sort_keys=True),
                    json.dumps(run, sort_keys=True),
                    system.get("name"),
                    system.get("version"),
                ],
            )
            for table, cols in _TABLES.items():
                rows = getattr(report, _ATTR[table])
                if not rows:
                    continue
                frame = _encode(rows, cols, run_id)
                con.register("_eval_rows", frame)
                try:
                    names = ", ".join(f'"{c}"' for c in ["run_id", "row_no", *[c for c, _ in cols]])
                    con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _eval_rows")
                finally:
                    con.unregister("_eval_rows")
        return run_id

    def runs(self) -> pd.DataFrame:
        """All runs, newest first (run id, time, dataset fingerprint and name, embedding key, model, code)."""
        with self.db.connect() as con:
            return con.execute(
                "SELECT run_id, created, dataset_fingerprint, dataset_name, embedding_key, "
                "json_extract_string(model_config, '$.model') AS model, code_version, system, system_version "
                "FROM eval_runs ORDER BY created DESC, run_id"
            ).df()

    def list(self) -> builtins.list[StoredEvaluation]:
        """Every stored run, newest first, as the dashboard's selectors show them."""
        return [
            StoredEvaluation(
                run_id=str(r.run_id),
                dataset=str(r.dataset_name) if isinstance(r.dataset_name, str) else "?",
                dataset_fingerprint=str(r.dataset_fingerprint) if isinstance(r.dataset_fingerprint, str) else "",
                embedding_key=str(r.embedding_key) if isinstance(r.embedding_key, str) else "",
                model=str(r.model) if isinstance(r.model, str) else "?",
                created_at=str(r.created),
                system=str(r.system) if isinstance(r.system, str) else None,
                system_version=str(r.system_version) if isinstance(r.system_version, str) else None,
            )
            for r in self.runs().itertuples(index=False)
        ]

    def for_model(self, embedding_key: str, gallery_size: int | None = None) -> builtins.list[StoredEvaluation]:
        """Return the runs made under ``embedding_key``, newest first, those that measured this gallery size first.

        With ``gallery_size``, the runs that measured 1:N searches of a gallery of that size
        come first: their chance of a false candidate is measured, not estimated.
        """
        measured: set[str] = set()
        if gallery_size is not None:
            with self.db.connect() as con:
                found = con.execute(
                    "SELECT DISTINCT run_id FROM eval_identification WHERE gallery_size = ?", [int(gallery_size)]
                ).fetchall()
            measured = {str(r[0]) for r in found}
        runs = [r for r in self.list() if r.embedding_key == embedding_key]
        return sorted(runs, key=lambda r: r.run_id not in measured)  # stable: newest first within each

    def table(self, name: str, run_id: str) -> pd.DataFrame:
        """Return one tidy table of one run, JSON group columns decoded.

        Tables: ``rates``, ``disparity``, ``inequity``, ``det``, ``histograms``, ``fta``,
        ``identification``, ``calibrations``, ``lfw_pairs``.

        Raises
        ------
        KeyError
            For an unknown table name.
        """
        table = name if name.startswith("eval_") else f"eval_{name}"
        if table not in _TABLES:
            raise KeyError(f"no evaluation table {name!r}; have {sorted(t[5:] for t in _TABLES)}")
        with self.db.connect() as con:
            frame = con.execute(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY row_no", [run_id]).df()
        for c in _JSON_COLUMNS & set(frame.columns):
            frame[c] = [json.loads(v) if isinstance(v, str) else None for v in frame[c]]
        return frame.drop(columns=["row_no"])

    def load(self, run_id: str) -> EvaluationReport:
        """Rebuild the report of a run (cached: runs are never changed).

        Raises
        ------
        KeyError
            If no run has that id.
        """
        with self._lock:
            cached = self._reports.get(run_id)
        if cached is None:
            cached = self._read(run_id)
            with self._lock:
                self._reports[run_id] = cached
        return cached

    def _read(self, run_id: str) -> EvaluationReport:
        with self.db.connect() as con:
            found = con.execute("SELECT run FROM eval_runs WHERE run_id = ?", [run_id]).fetchall()
            if not found:
                raise KeyError(f"no evaluation run {run_id!r}")
            run = json.loads(found[0][0])
            tables: dict[str, tuple[dict[str, Any], ...]] = {}
            for table, cols in _TABLES.items():
                names = [c for c, _ in cols]
                cursor = con.execute(
                    f"SELECT {', '.join(repr(c).replace(chr(39), chr(34)) for c in names)} FROM {table} "
                    "WHERE run_id = ? ORDER BY row_no",
                    [run_id],
                )
                tables[_ATTR[table]] = tuple(
                    {c: _decode_value(v, c in _JSON_COLUMNS) for c, v in zip(names, rec, strict=True)}
                    for rec in cursor.fetchall()
                )
        rates = upgrade_rate_rows(tables.pop("rates"), run.get("model_config"))
        return EvaluationReport(run=run, rates=rates, **tables)

    def latest(self, *, embedding_key: str | None = None, dataset_fingerprint: str | None = None) -> str | None:
        """Return the id of the newest run matching the filters (a dataset under a model), or ``None``."""
        sql = "SELECT run_id FROM eval_runs WHERE 1=1"
        params: list[Any] = []
        if embedding_key is not None:
            sql += " AND embedding_key = ?"
            params.append(embedding_key)
        if dataset_fingerprint is not None:
            sql += " AND dataset_fingerprint = ?"
            params.append(dataset_fingerprint)
        with self.db.connect() as con:
            found = con.execute(sql + " ORDER BY created DESC, run_id LIMIT 1", params).fetchall()
        return str(found[0][0]) if found else None
