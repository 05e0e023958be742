"""Helper of the crash test: run audited searches forever, printing each returned record's seq.

The engine and gallery are real (the probes are embeddings, so no model runs).
Usage: python crash_writer.py DB_PATH KEY_PATH
"""

from __future__ import annotations

import sys

import numpy as np

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from core import Database, Embedding, Engine, EnrollItem, Face, GalleryExists, GalleryStore
from tests.auth import actor_for
from tests.conftest import make_config, random_unit


def main() -> None:
    db_path, key_path = sys.argv[1], sys.argv[2]
    db = Database(db_path)
    config = make_config(threshold=1.0)
    galleries = GalleryStore(db)
    vectors = random_unit(8, seed=1)
    face = Face(0, 0, 10, 10, 1.0, "dlib")
    try:
        galleries.create("g", config)
        galleries.enroll("g", [EnrollItem(f"s{i}", Embedding(v, f"{i:064x}", face, 1, config), f"{i}.jpg")
                               for i, v in enumerate(vectors)])
    except GalleryExists:
        pass
    log = AuditLog(db, key_path=key_path, checkpoint_every=7)
    actor = actor_for(db, "crash", "operator")
    audited = AuditedEngine(AuditSession(log, AuditContext(purpose="crash test", case_ref="K"), actor),
                            Engine(config), galleries)
    rng = np.random.default_rng(0)
    i = 0
    while True:
        vector = rng.standard_normal(128).astype(np.float32)
        probe = Embedding(vector / np.linalg.norm(vector), f"{i:064x}", face, 1, config)
        out = audited.search("g", probe, top_k=2)
        # the result is in hand only now, and its record is committed
        sys.stdout.write(f"{out.seq}\n")
        sys.stdout.flush()
        i += 1


if __name__ == "__main__":
    main()
