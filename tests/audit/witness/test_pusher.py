"""The log pushes its checkpoint to the configured witnesses every N records, and stores the cosignatures."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from audit.trail.log import AuditLog
from audit.trail.notes import parse_note, parse_vkey, verify_cosignature
from audit.witness import WitnessServer, WitnessState, publish_checkpoint
from core.settings import Settings
from core.storage.connection import Database
from tests.audit.trail._helpers import record_fields


def test_every_n_records_the_checkpoint_is_cosigned_and_stored(tmp_path: Path) -> None:
    bootstrap = AuditLog(Database(tmp_path / "db.duckdb"), key_path=tmp_path / "key")
    state = WitnessState(tmp_path / "witness", [bootstrap.vkey()])
    server = WitnessServer(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        witnesses = (f"http://127.0.0.1:{server.port}={state.vkey()}",)
        settings = replace(Settings(), witnesses=witnesses, witness_every=3, witness_seconds=3600.0)
        log = AuditLog(bootstrap.db, key_path=tmp_path / "key", settings=settings)
        for i in range(7):
            log.append(record_fields(i))
            deadline = time.monotonic() + 10
            while (i + 1) in (3, 6) and not log.cosignatures(i + 1) and time.monotonic() < deadline:
                time.sleep(0.05)
        assert {c["size"] for c in log.cosignatures()} == {3, 6}
        stored = log.cosignatures(6)[0]
        body = log.note(6).body
        assert verify_cosignature(body, parse_note(body + "\n" + stored["signature"]).signatures,
                                  parse_vkey(state.vkey())) > 0
        # publish at once (audit publish), then the witness's state survives a restart
        assert [r["ok"] for r in publish_checkpoint(log, witnesses)] == [True]
        assert WitnessState(tmp_path / "witness").logs[log.origin]["size"] == 7
        assert log.verify().to_dict()["unwitnessed"] == 0
    finally:
        server.shutdown()
