"""The evaluation walk: ``facetrail evaluate`` and the demo's evaluation step reach the store through the runner.

The runner is wrapped wherever it is bound; each interface is then run for real (a
real engine with the fake face pipeline) and must have called it. The notebooks'
part of the walk is in ``test_notebooks.py`` (they need the real model).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import audit.evaluation.runner as runner
import dashboard.cli.evaluate  # noqa: F401  (bound before the wrap)
import dashboard.demo as demo
from audit import AuditFilter, EvaluationStore
from audit.accounts import UserStore
from audit.runtime import Runtime
from dashboard.cli import main as facetrail
from tests.auth import FAST_HASHER, token_for
from tests.conftest import make_config
from tests.fakes import blank_png, face_png


@pytest.fixture
def runner_calls(monkeypatch: pytest.MonkeyPatch) -> list[runner.EvaluationRequest]:
    """Wrap :func:`audit.evaluation.runner.run_evaluation` in every module that bound it; return the requests seen."""
    original = runner.run_evaluation
    calls: list[runner.EvaluationRequest] = []

    def wrapped(request, engine, stores, session):  # type: ignore[no-untyped-def]
        calls.append(request)
        return original(request, engine, stores, session)

    bound = [m for m in list(sys.modules.values()) if getattr(m, "run_evaluation", None) is original]
    assert {"audit", "audit.evaluation", "dashboard.cli.evaluate", "dashboard.demo"} <= {m.__name__ for m in bound}
    for module in bound:
        monkeypatch.setattr(module, "run_evaluation", wrapped)
    return calls


def write_demo_data(folder: Path) -> Path:
    """lfw_small (6 people x 3 photos) and congress_small (5 members x 2 portraits) of fake faces."""
    lfw = ["image,identity,sex,race_usc_sail"]
    for p in range(6):
        for k in range(3):
            rel = f"images/Person_{p}/Person_{p}_{k + 1:04d}.jpg"
            (folder / "lfw_small" / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / "lfw_small" / rel).write_bytes(face_png(f"lfw{p}", k))
            lfw.append(f"{rel},Person_{p},{'F' if p % 2 else 'M'},{'a' if p % 3 else 'b'}")
    (folder / "lfw_small" / "labels.csv").write_text("\n".join(lfw) + "\n")
    congress = ["image,bioguide_id,name,sex,race_house_historian"]
    for m in range(5):
        for photo in ("c116", "c118"):
            rel = f"images/M{m:06d}/{photo}.jpg"
            (folder / "congress_small" / rel).parent.mkdir(parents=True, exist_ok=True)
            data = blank_png() if (m, photo) == (4, "c116") else face_png(f"member{m}", int(photo[1:]))
            (folder / "congress_small" / rel).write_bytes(data)
            congress.append(f"{rel},M{m:06d},Member {m},{'F' if m % 2 else 'M'},{'x' if m % 2 else 'y'}")
    (folder / "congress_small" / "labels.csv").write_text("\n".join(congress) + "\n")
    return folder


def test_the_cli_and_the_demo_evaluate_through_the_runner(tmp_path, monkeypatch, fake_engine, runner_calls):
    monkeypatch.setattr(Runtime, "engine", lambda self, *names: fake_engine)
    monkeypatch.setattr(Runtime, "engine_for_gallery", lambda self, name: fake_engine)
    data = write_demo_data(tmp_path / "data")
    monkeypatch.setenv("FACETRAIL_TOKEN", token_for(tmp_path / "cli.duckdb", "auditor-3", "auditor"))
    code = facetrail(["evaluate", "--db", str(tmp_path / "cli.duckdb"), "--manifest", str(data / "lfw_small" / "labels.csv"),
                      "--subject-col", "identity", "--by", "sex", "--bootstrap", "0", "--workers", "1",
                      "--operator", "auditor-3", "--purpose", "walk", "--json"])
    assert code == 0
    assert len(runner_calls) == 1 and runner_calls[0].dataset.subject_column == "identity"

    rt = Runtime(str(tmp_path / "demo.duckdb"))
    rt.galleries.create(demo.GALLERY, make_config())
    users = UserStore(rt.db, hasher=FAST_HASHER)
    users.add("auditor1", "auditor", demo.demo_password("auditor1"))
    users.add("admin1", "admin", demo.demo_password("admin1"))  # designates the 1:N run the pages quote
    actors = demo._DemoActors(rt)  # the demo's evaluations run as auditor1, signed in with its demo password
    scene = demo.SceneReport(data_dir=str(data))
    demo._evaluations(rt, data, scene, None, None, 0, 1, lambda _: None, actors)
    assert [r.dataset.path.parent.name for r in runner_calls[1:]] == ["congress_small", "lfw_small"]
    assert not scene.notes and len(scene.evaluations) == 2

    runs = {r.dataset: r for r in EvaluationStore(rt.db).list()}
    assert set(runs) == {"lfw_small", "congress_small"}
    congress = EvaluationStore(rt.db).load(runs["congress_small"].run_id)
    overall = [r for r in congress.identification_rows if not r["group"]]
    assert overall and all(r["gallery_size"] == 18 and r["nonmated_searches"] == 5 for r in overall)
    assert len(rt.log.list(AuditFilter(action="evaluate"))) == 2
    assert {e.record.operator for e in rt.log.list(AuditFilter(action="evaluate"))} == {"auditor1"}

    size = rt.log.size()
    demo._evaluations(rt, data, demo.SceneReport(data_dir=str(data)), None, None, 0, 1, lambda _: None, actors)
    assert len(runner_calls) == 5 and rt.log.size() == size  # again through the runner, which reuses both runs
