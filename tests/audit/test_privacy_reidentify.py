"""Re-identification from the outside: a pseudonymised export plus lfw_small's public names re-identify nobody.

The attacker knows every public name of lfw_small (463) and every image of it, so can compute
each image's SHA-256, every unkeyed face id facetrail would give (gallery, name, image hash),
and each name in clear. The gallery enrols ten of them (their real image hashes; the
embeddings come from the fake pipeline, so no model is needed), searches find candidates,
a subject is erased and a search of it fails; the auditor exports with ``--pseudonymize``.
Before the fix the same attack recovered 10 of 10 candidates (issue 11).
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from audit.audited import audited_export
from core import Database, Embedding, EnrollItem, GalleryStore, NotFound
from core.gallery import face_id_for
from tests.auth import actor_for
from tests.fakes import face_png

pytestmark = [pytest.mark.data]
CTX = AuditContext(purpose="oversight", case_ref="CASE-9")


def attacker_knowledge(data_dir: Path) -> tuple[dict[str, list[str]], list[str]]:
    """Every public name of lfw_small with its images' SHA-256."""
    images: dict[str, list[str]] = {}
    with open(data_dir / "lfw_small" / "labels.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            digest = hashlib.sha256((data_dir / "lfw_small" / row["image"]).read_bytes()).hexdigest()
            images.setdefault(row["identity"], []).append(digest)
    return images, sorted(images)


def test_a_pseudonymised_export_re_identifies_nobody(tmp_path: Path, fake_engine, data_dir: Path) -> None:
    images, names = attacker_knowledge(data_dir)
    assert len(names) == 463
    enrolled = [n for n in names if len(images[n]) >= 2][:10]
    db = Database(tmp_path / "ft.duckdb")
    log = AuditLog(db, key_path=tmp_path / "audit-key")
    galleries = GalleryStore(db)
    admin = AuditedEngine(AuditSession(log, CTX, actor_for(db, "root", "admin")), fake_engine, galleries)
    admin.create_gallery("g", fake_engine.config)
    faces = {n: fake_engine.embed(face_png(n)) for n in enrolled}
    items = [EnrollItem(n, Embedding(faces[n].vector, images[n][0], faces[n].face, 1, fake_engine.config),
                        f"{n}_0001.jpg") for n in enrolled]
    admin.enroll("g", items)
    operator = AuditedEngine(AuditSession(log, CTX, actor_for(db, "olga", "operator")), fake_engine, galleries)
    found = 0
    for n in enrolled:
        result = operator.search("g", face_png(n, 3), top_k=1).result
        found += result.candidates[0].subject_id == n
    assert found == 10
    admin.delete_subject("g", enrolled[0])
    with pytest.raises(NotFound, match=enrolled[0]):  # its error text names the subject: recorded in the log
        admin.delete_subject("g", enrolled[0])
    auditor = AuditSession(log, CTX, actor_for(db, "audrey", "auditor"))
    texts = []
    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"pseudo.{fmt}"
        audited_export(auditor, log, out, fmt, pseudonymize=True)
        texts.append(out.read_text(encoding="utf-8") if fmt != "parquet"
                     else json.dumps(pq.read_table(out).to_pylist()))
    exported = "\n".join(texts)
    # the attack: every name, every public image hash, every unkeyed face id of every name and image
    clues = set(names)
    for n in names:
        clues.update(images[n])
        clues.update(face_id_for("g", n, h) for h in images[n])
    leaked = sorted(c for c in clues if c in exported)
    assert leaked == []
    # the export is still useful: the ten searches' candidates are there, under stable pseudonyms
    rows = [json.loads(line)["record"] for line in texts[1].splitlines()]
    searched = [r for r in rows if r["action"] == "search"]
    # ... but the erased subject's (audit.trail.sealed): its search reads "erased", under no pseudonym
    assert [r["candidates"][0]["subject_id"] for r in searched[:1]] == ["erased"]
    assert [r["candidates"][0]["face_id"] for r in searched[:1]] == ["erased"]
    kept = searched[1:]
    assert len(kept) == 9 and all(r["candidates"][0]["subject_id"].startswith("ps_") for r in kept)
    assert all(r["candidates"][0]["face_id"].startswith("pf_") for r in kept)
    assert len({r["candidates"][0]["subject_id"] for r in kept}) == 9
