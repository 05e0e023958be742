"""Regenerate ``core/calibrations.json``: the calibrated default thresholds shipped with facetrail.

For each configuration, calibrates on ``lfw_small`` (all 1.49 million impostor
pairs; in-the-wild photos) at FMR = 1e-3 through the runner ``facetrail calibrate``
calls (:func:`audit.run_calibration`, into the benchmarks' database, whose
embedding cache it reuses, and recorded in its audit log), then copies the stored
threshold and its provenance (dataset fingerprint, date, achieved FMR/FNMR,
per-group FMR) into the JSON file.
A database calibration (``facetrail calibrate`` on your own data) always takes
precedence over the shipped one.

Each ``--configs`` item names what the CLI is given (``model/detector/alignment``);
the entry is written under the full name of the configuration the CLI builds from
it (:attr:`core.config.ModelConfig.name`: detector cascade and mirror averaging
included, e.g. ``Dlib/dlib>dlib_cnn/dlib_5pt+mirror`` for the default). Entries of
other configurations already in the file are kept.

Usage: ``python benchmarks/make_shipped_calibration.py [--data DIR] [--configs Dlib/dlib/dlib_5pt,...]``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench_lfw_small_pairs import sign_in_maintainer  # scripts of this folder: run as python benchmarks/...

from audit import CalibrationRequest, DatasetSource, EvaluationStores, Runtime, run_calibration
from core import Settings

OUT = Path(__file__).resolve().parent.parent / "core" / "calibrations.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FACETRAIL_TEST_DATA", "../shared/datasets"))
    parser.add_argument("--configs", default="Dlib/dlib/dlib_5pt,Dlib/dlib/deepface,Dlib/opencv/dlib_5pt")
    parser.add_argument("--target-fmr", default="1e-3")
    parser.add_argument("--db", default="benchmarks/out/embedding-cache.duckdb", help="working database (cache)")
    args = parser.parse_args()
    shipped = json.loads(OUT.read_text()) if OUT.is_file() else {}
    manifest = Path(args.data) / "lfw_small" / "labels.csv"
    db_path = args.db
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(Settings.from_env().with_db(db_path))
    sign_in_maintainer(runtime)
    session = runtime.session(runtime.context(purpose="calibrate the shipped default threshold"))
    stores = EvaluationStores.on(runtime.db)
    source = DatasetSource(manifest=manifest, subject_column="identity")
    for config_id in args.configs.split(","):
        model, detector, alignment = config_id.split("/")
        request = CalibrationRequest(source, float(args.target_fmr), by=(("sex",), ("race_usc_sail",)))
        engine = runtime.engine(model, detector, alignment)
        run_calibration(request, engine, stores, session)
        config = engine.config
        latest = runtime.thresholds.history()[0]
        if latest["embedding_key"] != config.embedding_key:
            raise SystemExit(f"the newest calibration is not of {config.name} ({latest['embedding_key']})")
        shipped[config.name] = {"threshold": latest["threshold"], "source": latest["source"]}
        print(f"{config.name}: threshold {latest['threshold']:.6f} ({latest['source']['description']})")
    OUT.write_text(json.dumps(shipped, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
