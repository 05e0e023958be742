"""The witness: cosigns a log's checkpoints only along one consistent history (C2SP tlog-witness).

State (a folder): ``witness-key`` (Ed25519 PEM, 0600), ``witness.json`` (its name, the
trusted log keys) and ``logs.json`` (per origin: the size, root and note of the last
checkpoint it cosigned). Every change is written to a temporary file, fsynced and renamed
over the old one (then the folder is fsynced), and the check of the old size and the
update are done under one lock, so two requests cannot roll the state back.

``POST /add-checkpoint`` (body: ``old <size>``, proof lines, a blank line, the checkpoint):

- 400: malformed body or checkpoint, or old size above the checkpoint's;
- 404: unknown origin (no trusted key for it);
- 403: no signature by a trusted key, or one that does not verify;
- 409 (``text/x.tlog.size``: the size it holds): old size is not the size it last
  cosigned (a rollback, or a client out of date), or the same size with another root (a
  fork; the spec answers 422 there, this issue asks 409);
- 422: the consistency proof does not verify (or is not empty when it must be), or a
  size-zero checkpoint without the empty root;
- 200: the cosignature line(s).

``GET /checkpoint?origin=O`` returns the last checkpoint it cosigned for ``O`` with its
cosignature (404 if none): what ``audit verify --witness URL`` compares the log with.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.errors import AuditError
from audit.trail.chain import EMPTY_ROOT, verify_consistency
from audit.trail.keys import load_or_create_private_key
from audit.trail.notes import (
    COSIGNATURE_V1,
    NoteError,
    NoteKey,
    cosign,
    parse_checkpoint,
    parse_vkey,
    verify_checkpoint,
)

__all__ = ["Response", "WitnessServer", "WitnessState"]

log = logging.getLogger(__name__)

_MAX_BODY = 128 * 1024
_MAX_PROOF = 63


@dataclass(frozen=True)
class Response:
    """An HTTP answer of the witness."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class WitnessState:
    """A witness's key, trusted log keys and last cosigned checkpoint per origin, in folder ``folder``.

    Raises
    ------
    AuditError
        A state file is not what this witness wrote.
    """

    def __init__(self, folder: str | os.PathLike[str], log_keys: list[str] = ()) -> None:  # type: ignore[assignment]
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._key: Ed25519PrivateKey = load_or_create_private_key(self.folder / "witness-key")
        meta_path = self.folder / "witness.json"
        meta = self._read(meta_path) or {"name": f"witness.facetrail.example/{secrets.token_hex(6)}", "log_keys": []}
        known = list(meta["log_keys"])
        for vkey in log_keys:
            parse_vkey(vkey)
            if vkey not in known:
                known.append(vkey)
        meta["log_keys"] = known
        _atomic_write(meta_path, meta)
        self.name: str = str(meta["name"])
        self.log_keys: dict[str, list[NoteKey]] = {}
        for vkey in known:
            key = parse_vkey(vkey)
            self.log_keys.setdefault(key.name, []).append(key)
        self._logs_path = self.folder / "logs.json"
        self.logs: dict[str, dict[str, Any]] = self._read(self._logs_path) or {}
        self.lock = threading.Lock()

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise AuditError(f"witness state {str(path)!r} cannot be read: {err}") from err
        if not isinstance(data, dict):
            raise AuditError(f"witness state {str(path)!r} is not a JSON object")
        return data

    @property
    def key(self) -> NoteKey:
        """The witness's cosignature key (type 0x04)."""
        return NoteKey.of(self.name, self._key, COSIGNATURE_V1)

    def vkey(self) -> str:
        """Return the witness's verifier key string (what logs configure)."""
        return self.key.vkey()

    def add_checkpoint(self, body: bytes) -> Response:
        """Return the ``add-checkpoint`` call (see the module docstring)."""
        try:
            old, proof, note = _parse_request(body)
            cp, _ = parse_checkpoint(note)
        except (NoteError, ValueError) as err:
            return Response(400, f"malformed request: {err}\n")
        keys = self.log_keys.get(cp.origin)
        if not keys:
            return Response(404, f"unknown log origin {cp.origin!r}\n")
        try:
            verify_checkpoint(note, keys, origin=cp.origin)
        except NoteError as err:
            return Response(403, f"{err}\n")
        if old > cp.size:
            return Response(400, f"old size {old} is above the checkpoint's size {cp.size}\n")
        with self.lock:
            held = self.logs.get(cp.origin)
            held_size = int(held["size"]) if held else 0
            held_root = base64.b64decode(held["root"]) if held else EMPTY_ROOT
            if old != held_size:
                log.warning("witness: %s sent old size %d, holding %d (rollback?)", cp.origin, old, held_size)
                return Response(409, f"{held_size}\n", "text/x.tlog.size")
            if cp.size == 0 and cp.root != EMPTY_ROOT:
                return Response(422, "a checkpoint of size zero must have the empty tree's root\n")
            if old == cp.size and cp.root != held_root:
                log.warning("witness: %s shows another root at size %d: a fork", cp.origin, cp.size)
                return Response(409, f"{held_size}\n", "text/x.tlog.size")
            if old == 0 and proof:
                return Response(422, "the consistency proof from size 0 must be empty\n")
            if 0 < old < cp.size and not verify_consistency(old, cp.size, held_root, cp.root, proof):
                log.warning("witness: %s sent a bad consistency proof %d -> %d", cp.origin, old, cp.size)
                return Response(422, f"the consistency proof from {old} to {cp.size} does not verify\n")
            signature = cosign(cp.body, self.name, self._key, int(time.time()))
            self.logs[cp.origin] = {"size": cp.size, "root": base64.b64encode(cp.root).decode("ascii"),
                                    "note": note + signature.line()}
            _atomic_write(self._logs_path, self.logs)
        return Response(200, signature.line())

    def latest(self, origin: str) -> Response:
        """Return the last cosigned checkpoint of ``origin`` with the cosignature (404 if none)."""
        with self.lock:
            held = self.logs.get(origin)
        if held is None:
            return Response(404, f"no checkpoint of {origin!r} cosigned\n")
        return Response(200, str(held["note"]))


def _parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    """Split an add-checkpoint body into old size, proof hashes and the checkpoint note.

    Raises
    ------
    ValueError
        Not UTF-8, no ``old`` line, a proof line that is not a base64 32-byte hash, more
        than 63 of them, or no blank line before the checkpoint.
    """
    if len(body) > _MAX_BODY:
        raise ValueError(f"a request is at most {_MAX_BODY} bytes")
    text = body.decode("utf-8")
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ValueError("no blank line between the proof and the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    if not first.startswith("old ") or not first[4:].isdigit() or (first[4:] != "0" and first[4] == "0"):
        raise ValueError(f"the first line must be 'old <size>', got {first!r}")
    if len(lines) - 1 > _MAX_PROOF:
        raise ValueError(f"at most {_MAX_PROOF} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except binascii.Error as err:
            raise ValueError(f"proof line {line!r} is not base64") from err
        if len(h) != 32:
            raise ValueError(f"proof line {line!r} is not a 32-byte hash")
        proof.append(h)
    return int(first[4:]), proof, note


class WitnessServer:
    """The witness over HTTP (``ThreadingHTTPServer``), bound to ``host`` (loopback by default)."""

    def __init__(self, state: WitnessState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        witness = state

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, r: Response) -> None:
                data = r.body.encode("utf-8")
                self.send_response(r.status)
                self.send_header("Content-Type", r.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                if urlparse(self.path).path.rstrip("/") != "/add-checkpoint":
                    self._send(Response(404, "not found\n"))
                    return
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    length = -1
                if not 0 <= length <= _MAX_BODY:
                    self._send(Response(400, "missing or too large Content-Length\n"))
                    return
                try:
                    self._send(witness.add_checkpoint(self.rfile.read(length)))
                except UnicodeDecodeError:
                    self._send(Response(400, "the request is not UTF-8\n"))

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if url.path.rstrip("/") != "/checkpoint":
                    self._send(Response(404, "not found\n"))
                    return
                origin = (parse_qs(url.query).get("origin") or [""])[0]
                self._send(witness.latest(origin))

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
                log.info("witness %s: " + format, self.address_string(), *args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.httpd.server_address[1])

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown`."""
        self.httpd.serve_forever()

    def shutdown(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
