"""Inputs a careless or hostile user gives the engine: non-regular files, bad ids, bad thresholds, bad manifests."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from core import (
    BadInput,
    Database,
    EnrollmentFailed,
    GalleryStore,
    ManifestError,
    UnreadableImage,
    check_subject_id,
    load_image,
    read_folder,
    read_manifest,
)
from core.config import check_threshold
from core.enrollment import FAILURES_KEPT
from core.image import sha256_file
from tests.auth import actor_for
from tests.conftest import make_config
from tests.fakes import face_png


def _within(seconds: float, call):
    """Run ``call`` in a thread; fail if it has not returned within ``seconds`` (it would hang)."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except Exception as err:  # handed back to the test thread, which asserts on it
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not return within {seconds} s"
    return box


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "probe.jpg"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("which", ["fifo", "dev_zero", "folder"])
def test_only_regular_files_are_read_and_nothing_hangs(which: str, fifo: Path, tmp_path: Path) -> None:
    path = {"fifo": fifo, "dev_zero": Path("/dev/zero"), "folder": tmp_path}[which]
    loaded = _within(5, lambda: load_image(path))
    assert isinstance(loaded.get("error"), UnreadableImage)
    assert ("folder" if which == "folder" else "only regular files are read") in str(loaded["error"])
    hashed = _within(5, lambda: sha256_file(path))
    assert isinstance(hashed.get("error"), OSError)


def test_a_batch_with_a_fifo_and_dev_zero_reports_them_and_goes_on(fake_engine, fifo: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(face_png("a"))
    batch = _within(10, lambda: fake_engine.embed_batch([str(fifo), "/dev/zero", str(good), str(tmp_path)],
                                                       workers=1))["value"]
    assert list(batch.embeddings) == [str(good)]
    assert [(f.image, f.code) for f in batch.failures] == [
        (str(fifo), "unreadable_image"), ("/dev/zero", "unreadable_image"), (str(tmp_path), "unreadable_image")]


@pytest.mark.parametrize("bad, problem", [
    ("line\nbreak", "control"),
    ("evil\u202egnp.exe", "bidirectional"),
    ("x" * 20_000, "20,000 characters"),
    ("   ", "empty"),
    ("zero\u200bwidth", "format"),
])
def test_subject_ids_are_validated(bad: str, problem: str) -> None:
    with pytest.raises(BadInput, match=problem):
        check_subject_id(bad)
    assert check_subject_id("  P123 ") == "P123"
    assert check_subject_id("Jos\u00e9 Mar\u00eda") == "Jos\u00e9 Mar\u00eda"


def test_a_manifest_with_a_bad_subject_id_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(face_png("a"))
    manifest = tmp_path / "m.csv"
    manifest.write_text('image,person\na.png,ok\na.png,"two\nlines"\n', encoding="utf-8")
    with pytest.raises(BadInput, match="line 3"):
        read_manifest(manifest, "person")


def test_manifest_paths_stay_in_the_folder_or_are_absolute(tmp_path: Path) -> None:
    inner = tmp_path / "set"
    inner.mkdir()
    (inner / "a.png").write_bytes(face_png("a"))
    (inner / "m.csv").write_text(f"image,person\na.png,p1\n{inner / 'a.png'},p2\n", encoding="utf-8")
    rows = read_manifest(inner / "m.csv", "person")
    assert [(Path(r.path), r.subject_id) for r in rows] == [(inner / "a.png", "p1"), (inner / "a.png", "p2")]
    (inner / "bad.csv").write_text("image,person\n../secret.png,p1\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"bad.csv line 2.*no '\.\.'"):
        read_manifest(inner / "bad.csv", "person")


def test_a_subject_folder_with_a_bad_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad\u202ename").mkdir()
    (tmp_path / "bad\u202ename" / "a.png").write_bytes(face_png("a"))
    with pytest.raises(BadInput, match="bidirectional"):
        read_folder(tmp_path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e309, -0.01, 2.5])
def test_thresholds_must_be_cosine_distances(value: float) -> None:
    with pytest.raises(BadInput):
        check_threshold(value)


@pytest.fixture
def service(fake_engine, tmp_path: Path):
    db = Database(":memory:")
    galleries = GalleryStore(db)
    galleries.create("g", make_config())
    log = AuditLog(db, key_path=tmp_path / "key")
    return AuditedEngine(AuditSession(log, AuditContext(purpose="test", case_ref="C-1"), actor_for(db, "op", "operator")),
                         fake_engine, galleries), log


def as_admin(audited: AuditedEngine) -> AuditedEngine:
    """The same service acting as an admin (enrolments are gallery changes)."""
    return AuditedEngine(AuditSession(audited.log, audited.session.context, actor_for(audited.log.db, "root", "admin")),
                         audited.engine, audited.galleries)


def test_a_non_finite_threshold_is_refused_and_recorded(service, tmp_path: Path) -> None:
    audited, log = service
    probe = tmp_path / "p.png"
    probe.write_bytes(face_png("a"))
    with pytest.raises(BadInput, match="not a finite number"):
        audited.search("g", str(probe), threshold=float("nan"))
    with pytest.raises(BadInput, match="not a finite number"):
        audited.verify(str(probe), str(probe), threshold=1e309)
    records = [e.record for e in log.list()]
    assert [(r.action, r.outcome, r.details["attempted"], r.details["threshold_requested"]) for r in records] == [
        ("refused", "bad_input", "search", "nan"), ("refused", "bad_input", "verify", "inf")]
    assert log.verify().ok


def test_an_enrolment_where_every_image_fails_is_recorded_as_failed_and_summarised(service, tmp_path: Path) -> None:
    audited, log = service
    audited = as_admin(audited)
    folder = tmp_path / "dir_row"
    folder.mkdir()
    missing = [tmp_path / f"missing-{i}.jpg" for i in range(3 * FAILURES_KEPT)]
    rows = [*(str(p) for p in missing), str(folder)]
    from core import SourceImage

    with pytest.raises(EnrollmentFailed, match="no face enrolled"):
        audited.enroll_images("g", [SourceImage(p, "p1") for p in rows], workers=1)
    record = log.get(1).record
    assert (record.action, record.outcome) == ("enroll", "enroll_failed")
    failures = record.details["failures"]
    assert failures["count"] == len(rows) and failures["by_code"] == {"unreadable_image": len(rows)}
    assert len(failures["first"]) == FAILURES_KEPT and failures["not_shown"] == len(rows) - FAILURES_KEPT
    assert len(log.get(1).canonical) < 10_000  # the record stays small however many images fail


def test_an_enrolment_with_some_failures_enrols_the_rest(service, tmp_path: Path) -> None:
    audited, log = service
    audited = as_admin(audited)
    good = tmp_path / "good.png"
    good.write_bytes(face_png("a"))
    from core import SourceImage

    report = audited.enroll_images("g", [SourceImage(str(good), "p1"), SourceImage("/dev/zero", "p2")],
                                   workers=1).result
    assert len(report.enrolled) == 1 and report.failures.count == 1
    record = log.get(1).record
    assert record.outcome == "ok" and record.details["failures"]["by_code"] == {"unreadable_image": 1}
