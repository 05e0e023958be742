"""Helper of the crash test: append audit records forever, printing each committed seq.

Usage: python crash_writer.py DB_PATH KEY_PATH
"""

from __future__ import annotations

import sys

from audit.log import AuditLog
from core.db import Database


def main() -> None:
    db_path, key_path = sys.argv[1], sys.argv[2]
    log = AuditLog(Database(db_path), key_path=key_path, checkpoint_every=7)
    i = 0
    while True:
        entry = log.append({
            "action": "search",
            "outcome": "ok",
            "operator": "crash",
            "purpose": "crash test",
            "case_ref": "K",
            "details": {"i": i, "pad": "x" * (i % 50)},
        })
        sys.stdout.write(f"{entry.seq}\n")
        sys.stdout.flush()
        i += 1


if __name__ == "__main__":
    main()
