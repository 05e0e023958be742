"""Helper of the crash test: run audited fake-engine queries forever, printing each returned record's seq.

Usage: python crash_writer.py DB_PATH KEY_PATH
"""

from __future__ import annotations

import sys

from audit.log import AuditLog
from audit.service import AuditContext, AuditedEngine
from core.db import Database
from tests.audit._audit_helpers import FakeEngine, FakeGalleries


def main() -> None:
    db_path, key_path = sys.argv[1], sys.argv[2]
    log = AuditLog(Database(db_path), key_path=key_path, checkpoint_every=7)
    audited = AuditedEngine(FakeEngine(), FakeGalleries(), log, AuditContext("crash", "crash test", "K"))
    i = 0
    while True:
        if i % 3 == 2:
            out = audited.verify(b"a%d" % i, b"a%d" % i)
        else:
            out = audited.search("g", b"probe-%d" % i, top_k=2)
        # the result is in hand only now, and its record is committed
        sys.stdout.write(f"{out.seq}\n")
        sys.stdout.flush()
        i += 1


if __name__ == "__main__":
    main()
