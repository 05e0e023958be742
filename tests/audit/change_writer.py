"""Helper of the atomic-change crash test: gallery changes through the audited service, killed on demand.

Usage: ``python -m tests.audit.change_writer DB KEY TOKEN START POINT AT``

Alternately enrols subject ``pN`` and erases it again (N from ``START``), through the
real :class:`audit.AuditedEngine` on the real file database, printing ``enroll N SEQ``
or ``delete N SEQ`` once each change has returned (so it is committed). With a POINT
other than ``none``, the process SIGKILLs itself at that named point of change number
AT (0-based): ``after_change`` (the gallery changed, no record yet), ``after_record``
(both written, not committed) or ``after_commit``.
"""

from __future__ import annotations

import os
import signal
import sys

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from audit.accounts import CredentialStore
from core import Database, Engine, EnrollItem, GalleryStore
from tests.conftest import make_config
from tests.fakes import FakePipeline, face_png


def main() -> None:
    db_path, key_path, token, start, point, at = sys.argv[1:7]
    db = Database(db_path)
    log = AuditLog(db, key_path=key_path, checkpoint_every=3)
    changes = {"n": 0}

    def hook(name: str) -> None:
        if name == point and changes["n"] == int(at):
            os.kill(os.getpid(), signal.SIGKILL)

    actor = CredentialStore(db).resolve(token)
    session = AuditSession(log, AuditContext(purpose="crash test"), actor, fault_hook=hook)
    engine = Engine(make_config(threshold=0.3))
    engine._pipeline = FakePipeline()
    service = AuditedEngine(session, engine, GalleryStore(db))
    i = int(start)
    while True:
        subject = f"p{i}"
        if changes["n"] % 2 == 0:
            out = service.enroll("g", [EnrollItem(subject, engine.embed(face_png(subject)), f"{subject}.png")])
            sys.stdout.write(f"enroll {i} {out.seq}\n")
        else:
            out = service.delete_subject("g", subject)
            sys.stdout.write(f"delete {i} {out.seq}\n")
            i += 1
        sys.stdout.flush()
        changes["n"] += 1


if __name__ == "__main__":
    main()
