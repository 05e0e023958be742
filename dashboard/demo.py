"""The demo scene: an ACLU-style test of a face search system, recorded in full.

In 2018 the ACLU searched photos of every member of the US Congress against a
database of 25,000 arrest photos and got 28 false matches, disproportionately of
people of colour. The demo replays that shape on the shared data:

* a gallery ``arrest_photos`` built from ``lfw_small`` (the stand-in for an
  arrest-photo database) through the audited service;
* the 2023 portraits (``c118.jpg``) of ``congress_small`` searched against it by
  three operators, each with a purpose and a (fictional) case reference;
* some candidates confirmed or rejected by two reviewers (and one refused
  self-review, to show the two-person rule);
* evaluations of ``congress_small`` and ``lfw_small`` (per-group FMR/FNMR).

Every step goes through the public APIs of ``core`` and ``audit`` as an authenticated
demo account: the scene creates ``admin1`` as the first account of a new database, which
creates the others and marks the database as the demo's; each account signs in with its
documented password (:data:`DEMO_USERS`, :func:`demo_password`) when it first acts, and
signs out at the end (all of it recorded). Only the demo database shows that password
scheme on its sign-in page; the scene refuses a database that has accounts but is not a
demo database. Re-running the scene adds nothing that is already there.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit import (
    REASON_CODES,
    Actor,
    AuditContext,
    AuditError,
    AuditFilter,
    DatasetSource,
    EvaluationRequest,
    EvaluationStores,
    Forbidden,
    IdentificationRequest,
    ReviewRefused,
    Runtime,
    first_subjects,
    run_evaluation,
)
from core import (
    BadInput,
    GalleryNotFound,
    ManifestError,
    RecognitionError,
    Settings,
    SourceImage,
    install_models,
    read_manifest,
    sha256_file,
)

__all__ = [
    "DEMO_USERS",
    "GALLERY",
    "SceneReport",
    "build_scene",
    "demo_password",
    "resolve_data_dir",
    "operator_plan",
]

log = logging.getLogger(__name__)

#: Demo accounts: role-like handles, never names of people.
DEMO_USERS: tuple[tuple[str, str], ...] = (
    ("operator1", "operator"),
    ("operator2", "operator"),
    ("operator3", "operator"),
    ("reviewer1", "reviewer"),
    ("reviewer2", "reviewer"),
    ("auditor1", "auditor"),
    ("admin1", "admin"),
)

#: The stand-in arrest-photo gallery.
GALLERY = "arrest_photos"

_REPO_ROOT = Path(__file__).resolve().parent.parent
_LEGAL_BASIS = "demo scene: fictional case, ACLU-style test on public portraits"

#: Who searches which probes, and why (fictional cases).
_OPERATORS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("operator1", "identify a suspect in a burglary investigation", ("CR-2024-0117", "CR-2024-0142")),
    ("operator2", "identify a person seen on shop CCTV after a robbery", ("CR-2024-0209", "CR-2024-0233")),
    ("operator3", "lead generation: unidentified person in an assault complaint", ("CR-2024-0311",)),
)


def demo_password(name: str) -> str:
    """Return the documented password of a demo account (``<name>-demo``)."""
    return f"{name}-demo"


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Find the data folder: ``explicit``, else ``$FACETRAIL_DATA``, else ``../shared/datasets``.

    Raises
    ------
    ManifestError
        No folder with ``lfw_small/labels.csv`` and ``congress_small/labels.csv`` was found.
    """
    configured = Settings.from_env().data_dir
    if explicit:
        where, folder = "--data", Path(explicit).expanduser()
    elif configured is not None:
        where, folder = "$FACETRAIL_DATA", configured
    else:
        where, folder = "default", (_REPO_ROOT.parent / "shared" / "datasets").resolve()
    missing = [n for n in ("lfw_small", "congress_small") if not (folder / n / "labels.csv").is_file()]
    if missing:
        raise ManifestError(
            f"no usable data folder: {folder} ({where}) lacks {' and '.join(f'{m}/labels.csv' for m in missing)}. "
            "Pass --data DIR or set FACETRAIL_DATA to a folder holding lfw_small/ and congress_small/; "
            "to download LFW and its labels, run `facetrail datasets fetch lfw --dest DIR`"
        )
    return folder


@dataclass
class SceneReport:
    """What :func:`build_scene` did (and what it found already there)."""

    data_dir: str
    users_created: list[str] = field(default_factory=list)
    gallery_size: int = 0
    enrolled: int = 0
    searches_run: int = 0
    searches_skipped: int = 0
    reviews: int = 0
    evaluations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


def operator_plan(n_probes: int) -> list[tuple[str, str, str]]:
    """Split ``n_probes`` probes among the demo operators: ``(operator, purpose, case)`` per probe."""
    plan: list[tuple[str, str, str]] = []
    per = -(-n_probes // len(_OPERATORS)) if n_probes else 0
    for i in range(n_probes):
        operator, purpose, cases = _OPERATORS[min(i // max(per, 1), len(_OPERATORS) - 1)]
        plan.append((operator, purpose, cases[i % len(cases)]))
    return plan


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z]+", name.lower()) if len(t) > 1]


def _same_person(congress_name: str, lfw_identity: str) -> bool:
    """Whether a Congress member's name and an LFW identity name the same person (first and last name)."""
    a, b = _tokens(congress_name), _tokens(lfw_identity)
    return bool(a and b) and a[0] == b[0] and a[-1] == b[-1]


def _subset(images: Sequence[SourceImage], limit: int | None) -> list[SourceImage]:
    """Return the images of the first ``limit`` subjects (all when ``limit`` is None): the one helper's rule."""
    return first_subjects(images, limit)


def build_scene(
    runtime: Runtime,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    gallery_limit: int | None = None,
    probe_limit: int | None = None,
    evaluate: bool = True,
    bootstrap: int = 200,
    workers: int | None = None,
    progress: bool = False,
    echo: Callable[[str], None] = print,
) -> SceneReport:
    """Build (or complete) the demo scene in ``runtime``'s database.

    Parameters
    ----------
    runtime
        The database to fill.
    data_dir
        Data folder (see :func:`resolve_data_dir`).
    gallery_limit, probe_limit
        Use only the first N LFW subjects / Congress probes (small scenes for tests).
    evaluate
        Also evaluate ``congress_small`` and ``lfw_small``.
    bootstrap
        Bootstrap resamples for the evaluations' intervals.
    workers
        Processes for embedding.
    progress
        Show progress bars.
    echo
        Where progress lines go.

    Raises
    ------
    ManifestError
        No usable data folder.
    RecognitionError, AuditError
        A step failed as a whole (individual images that fail are recorded, not raised).
    """
    folder = resolve_data_dir(data_dir)
    report = SceneReport(data_dir=str(folder))
    install_models()  # Dlib's weights come from an installed package: linked, never downloaded
    actors = _DemoActors(runtime)
    _users(runtime, actors, report, echo)
    _gallery(runtime, actors, folder, report, gallery_limit, workers, progress, echo)
    truth = _searches(runtime, actors, folder, report, probe_limit, echo)
    _reviews(runtime, actors, truth, report, echo)
    if evaluate:
        _evaluations(runtime, folder, report, gallery_limit, probe_limit, bootstrap, workers, echo, actors)
    actors.sign_out()
    return report


class _DemoActors:
    """The demo accounts' sessions: each signs in with its documented password when it first acts (recorded)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._signed_in: dict[str, Actor] = {}

    def __getitem__(self, name: str) -> Actor:
        if name not in self._signed_in:
            self._signed_in[name] = self.runtime.accounts.sign_in(name, demo_password(name))
        return self._signed_in[name]

    def sign_out(self) -> None:
        """Sign every session the scene opened out (recorded)."""
        for actor in self._signed_in.values():
            self.runtime.accounts.sign_out(actor)
        self._signed_in.clear()


def _users(runtime: Runtime, actors: _DemoActors, report: SceneReport, echo: Callable[[str], None]) -> None:
    """Create the demo accounts: admin1 first (the database's first account), then the others by admin1.

    Raises
    ------
    BadInput
        The database has accounts but is not a demo database (the scene never adds accounts with
        documented passwords to a real deployment).
    """
    accounts = runtime.accounts
    if accounts.users.count() == 0:
        accounts.add_user(None, "admin1", "admin", demo_password("admin1"))
        report.users_created.append("admin1")
        accounts.mark_demo(actors["admin1"])
    elif not accounts.is_demo():
        raise BadInput(f"{runtime.db.path} has accounts and is not a demo database: the demo builds its scene "
                       "(with documented passwords) only in a new database or one it built; pass another --db")
    for name, role in DEMO_USERS:
        if not accounts.users.exists(name):
            accounts.add_user(actors["admin1"], name, role, demo_password(name))
            report.users_created.append(name)
    if report.users_created:
        echo("demo accounts (password = <name>-demo): " + ", ".join(
            f"{n} ({r}) / {demo_password(n)}" for n, r in DEMO_USERS if n in report.users_created))


def _gallery(
    runtime: Runtime, actors: _DemoActors, folder: Path, report: SceneReport, limit: int | None,
    workers: int | None, progress: bool, echo: Callable[[str], None],
) -> None:
    setup = AuditContext(purpose="demo: build the stand-in arrest-photo gallery from lfw_small",
                         case_ref="DEMO-SETUP", legal_basis=_LEGAL_BASIS)
    try:
        info = runtime.galleries.info(GALLERY)
    except GalleryNotFound:
        info = runtime.audited(runtime.engine(), setup, actors["admin1"]).create_gallery(
            GALLERY, runtime.config()).result
    if info.size > 0:
        report.gallery_size = info.size
        echo(f"gallery {GALLERY}: already enrolled ({info.size} faces)")
        return
    images = _subset(read_manifest(folder / "lfw_small" / "labels.csv", "identity"), limit)
    echo(f"gallery {GALLERY}: enrolling {len(images)} lfw_small images (the first run embeds them: minutes)")
    engine = runtime.engine_for_gallery(GALLERY)
    service = runtime.audited(engine, setup, actors["admin1"])
    enrolled = service.enroll_images(GALLERY, images, workers=workers, progress=progress).result
    report.enrolled = len(enrolled.enrolled)
    report.gallery_size = enrolled.size
    echo(f"gallery {GALLERY}: {enrolled.size} faces ({len(enrolled.failed)} images without a usable face)")


def _probes(folder: Path, limit: int | None) -> list[SourceImage]:
    rows = read_manifest(folder / "congress_small" / "labels.csv", "bioguide_id")
    probes = [r for r in rows if Path(r.path).name == "c118.jpg"]
    return probes if limit is None else probes[:limit]


def _searches(
    runtime: Runtime, actors: _DemoActors, folder: Path, report: SceneReport, limit: int | None,
    echo: Callable[[str], None],
) -> dict[str, str]:
    """Run the Congress searches not run yet; return probe sha256 -> member name (for reviews)."""
    probes = _probes(folder, limit)
    engine = runtime.engine_for_gallery(GALLERY)
    hashes: dict[str, str] = {}
    for p in probes:  # the probe's identity in the log; embedding happens once, in its search
        try:
            hashes[p.path] = sha256_file(p.path)
        except OSError:  # unreadable: its search below fails and is recorded with the reason
            continue
    names = {hashes[p.path]: p.metadata.get("name", p.subject_id) for p in probes if p.path in hashes}
    done = {
        e.record.probe_sha256[0]
        for e in runtime.log.list(AuditFilter(action="search", gallery=GALLERY))
        if e.record.probe_sha256
    }
    services: dict[tuple[str, str, str], Any] = {}
    for probe, (operator, purpose, case) in zip(probes, operator_plan(len(probes)), strict=True):
        sha = hashes.get(probe.path)
        if sha is not None and sha in done:
            report.searches_skipped += 1
            continue
        key = (operator, purpose, case)
        if key not in services:
            services[key] = runtime.audited(
                engine, AuditContext(purpose=purpose, case_ref=case, legal_basis=_LEGAL_BASIS), actors[operator])
        try:  # by its file, not the batch's embedding: a search with candidates keeps its probe photo for review
            services[key].search(GALLERY, probe.path, top_k=5)
        except RecognitionError as err:  # recorded by the service (no face, unreadable ...)
            log.info("probe %s: %s", probe.path, err)
        report.searches_run += 1
    echo(f"searches: {report.searches_run} run, {report.searches_skipped} already in the log")
    return names


def _reviews(runtime: Runtime, actors: _DemoActors, names: dict[str, str], report: SceneReport,
             echo: Callable[[str], None]) -> None:
    """Reviewers decide on the rank-1 candidate of two thirds of the matches (once per database).

    The first match's operator also tries to confirm it: refused (operators may not review,
    and nobody reviews their own query) and recorded, to show the two-person rule.
    """
    if runtime.log.list(AuditFilter(action="review"), limit=1):
        echo("reviews: already recorded")
        return
    matches = [e for e in runtime.log.list(AuditFilter(action="search", gallery=GALLERY))
               if e.record.outcome == "ok" and e.record.candidates]
    context = AuditContext()

    def review(name: str, seq: int, decision: str, note: str, face_id: str) -> None:
        reason = REASON_CODES[0] if decision == "confirm" else REASON_CODES[2]  # a reason code, as on the screen
        runtime.session(context, actors[name]).review(seq, decision, note=note, face_id=face_id, reason=reason)
        report.reviews += 1

    for i, entry in enumerate(matches):
        record = entry.record
        top = record.candidates[0]
        member = names.get(record.probe_sha256[0] if record.probe_sha256 else "", "")
        if i == 0 and record.operator:
            try:  # the operator trying to confirm their own match: refused and recorded
                review(record.operator, entry.seq, "confirm", "looks like the suspect", top.face_id)
            except (Forbidden, ReviewRefused):
                report.reviews += 1
        if i % 3 == 2:
            continue  # left pending for the reviewers on the dashboard
        if _same_person(member, top.subject_id):
            review("reviewer1", entry.seq, "confirm", "same person (checked against the case file)", top.face_id)
            if i % 2 == 0:
                review("reviewer2", entry.seq, "confirm", "agree: same person", top.face_id)
        else:
            review("reviewer1", entry.seq, "reject", "different person: features do not match", top.face_id)
    echo(f"reviews: {report.reviews} recorded on {len(matches)} searches with candidates")


def _evaluations(
    runtime: Runtime, folder: Path, report: SceneReport, gallery_limit: int | None, probe_limit: int | None,
    bootstrap: int, workers: int | None, echo: Callable[[str], None], actors: _DemoActors,
) -> None:
    """Evaluate congress_small (with 1:N against the gallery's source images) and lfw_small, through the runner."""
    engine = runtime.engine_for_gallery(GALLERY)
    grid = tuple(round(0.01 + 0.005 * k, 3) for k in range(59))  # the Search page's threshold slider stops
    gallery = DatasetSource(manifest=folder / "lfw_small" / "labels.csv", subject_column="identity",
                            label_columns=(), subject_limit=gallery_limit)
    identify = IdentificationRequest(gallery, probe_glob="*c118.jpg",
                                     thresholds=(*grid, round(engine.config.threshold, 3)))
    specs = (
        ("congress_small", "bioguide_id", ("sex", "race_house_historian"), probe_limit, identify),
        ("lfw_small", "identity", ("sex", "race_usc_sail"), gallery_limit, None),
    )
    stores = EvaluationStores.on(runtime.db)
    for name, subject, labels, limit, identification in specs:
        request = EvaluationRequest(
            dataset=DatasetSource(manifest=folder / name / "labels.csv", subject_column=subject, label_columns=labels,
                                  subject_limit=limit),
            by=(*((c,) for c in labels), labels),
            bootstrap=bootstrap,
            identification=identification,
            reuse_stored=True,
            workers=workers,
        )
        session = runtime.session(AuditContext(
            purpose=f"demographic evaluation of {name}", case_ref="DEMO-EVAL", legal_basis="demo scene: accuracy testing"),
            actors["auditor1"])
        try:
            run = run_evaluation(request, engine, stores, session)
        except (RecognitionError, AuditError) as err:
            report.notes.append(f"evaluation of {name} failed: {err}")
            echo(f"evaluation of {name}: failed: {err}")
            continue
        outcome = (f"already evaluated (run {run.run_id[:12]})" if run.reused
                   else f"stored run {run.run_id[:12]} ({run.report.run['images']} images)")
        report.evaluations.append(f"{name}: {outcome}")
        echo(f"evaluation of {name}: {outcome}")
        if identification is not None and runtime.audited(engine).threshold_policy().evaluation != run.run_id:
            # the run that measured 1:N against this gallery is the one the pages quote (once: a rebuild adds nothing)
            runtime.audited(engine, AuditContext(purpose="designate the evaluation the pages quote"),
                            actors["admin1"]).set_threshold_policy(
                None, None, reason=f"demo scene: {name} measured 1:N searches of this gallery",
                evaluation=run.run_id)
