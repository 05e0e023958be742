"""Evaluation runs in DuckDB, as tidy tables.

One row per run in ``eval_runs`` (run id, time, dataset fingerprint, model config,
code version, evaluation config) and one tidy table per kind of result, each row
tagged with its ``run_id``: ``eval_rates`` (per-group rates per threshold with
intervals), ``eval_disparity``, ``eval_det``, ``eval_histograms``, ``eval_fta``,
``eval_identification`` and ``eval_calibrations``. Group columns hold JSON objects
(``{"sex": "F"}``), so any grouping fits one schema. Runs are only ever inserted.

All SQL of the evaluation module passes through this file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from audit.evaluation.evaluate import EvaluationReport
from core.storage.connection import Database

__all__ = ["EvaluationStore"]

_JSON_COLUMNS = {"group", "other_group"}

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
        ("subjects", "BIGINT"),
        ("images", "BIGINT"),
        ("low_count", "BOOLEAN"),
        ("false_match_rate", "DOUBLE"),
        ("false_non_match_rate", "DOUBLE"),
        ("eer", "DOUBLE"),
        ("interval_method", "VARCHAR"),
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

    def save(self, report: EvaluationReport, *, dataset_name: str | None = None) -> str:
        """Insert a run and all its tables in one transaction; return the run id."""
        run = dict(report.run)
        run_id = str(run["run_id"])
        model_config = run.get("model_config") or {}
        with self.db.connect(transaction=True) as con:
            con.execute(
                "INSERT INTO eval_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        """All runs, newest first."""
        with self.db.connect() as con:
            return con.execute(
                "SELECT run_id, created, dataset_fingerprint, dataset_name, embedding_key, code_version "
                "FROM eval_runs ORDER BY created DESC"
            ).df()

    def table(self, name: str, run_id: str) -> pd.DataFrame:
        """Return one tidy table of one run, JSON group columns decoded.

        Tables: ``rates``, ``disparity``, ``det``, ``histograms``, ``fta``,
        ``identification``, ``calibrations``.

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
        """Rebuild the report of a run.

        Raises
        ------
        KeyError
            If no run has that id.
        """
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
        return EvaluationReport(run=run, **tables)

    def latest(self, *, embedding_key: str | None = None, dataset_fingerprint: str | None = None) -> str | None:
        """Return the id of the newest run matching the filters, or ``None``."""
        sql = "SELECT run_id FROM eval_runs WHERE 1=1"
        params: list[Any] = []
        if embedding_key is not None:
            sql += " AND embedding_key = ?"
            params.append(embedding_key)
        if dataset_fingerprint is not None:
            sql += " AND dataset_fingerprint = ?"
            params.append(dataset_fingerprint)
        with self.db.connect() as con:
            found = con.execute(sql + " ORDER BY created DESC LIMIT 1", params).fetchall()
        return str(found[0][0]) if found else None
