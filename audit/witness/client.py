"""The log's side of the witness protocol: push checkpoints, keep the cosignatures, read a witness's view.

A witness is configured as ``URL=VKEY`` (``Settings.witnesses``, ``FACETRAIL_WITNESSES``):
the settings, not the database, say which witnesses the log answers to, so whoever can
write the database cannot quietly drop them. :func:`publish_checkpoint` sends the head's
checkpoint with a consistency proof from the size the witness last cosigned (learnt from
the stored cosignatures, or from the witness's 409 answer), checks the returned
cosignature with the witness's key and stores it. Only loopback or LAN addresses the
operator configured are contacted.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from audit.errors import AuditError
from audit.trail.notes import NoteError, NoteKey, parse_note, parse_vkey, verify_cosignature

if TYPE_CHECKING:  # the log installs the pusher (Settings.witnesses): no import back at run time
    from audit.trail.log import AuditLog

__all__ = ["WitnessPusher", "check_cosignature", "fetch_witness_checkpoint", "parse_witness", "publish_checkpoint"]

log = logging.getLogger(__name__)

_TIMEOUT = 10.0


def parse_witness(text: str) -> tuple[str, NoteKey]:
    """Parse ``URL=VKEY``.

    Raises
    ------
    AuditError
        Not ``http(s)://...=<verifier key>``, or the key is not a cosignature key.
    """
    url, sep, vkey = text.partition("=")
    if not sep or urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise AuditError(f"a witness is configured as URL=VKEY (http or https), got {text!r}")
    try:
        key = parse_vkey(vkey)
    except NoteError as err:
        raise AuditError(f"witness {url}: {err}") from err
    return url.rstrip("/"), key


def _post(url: str, body: bytes) -> tuple[int, str]:
    req = urllib.request.Request(url + "/add-checkpoint", data=body, method="POST",
                                 headers={"Content-Type": "text/plain; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=_TIMEOUT) as resp:  # noqa: S310 (configured witness URL)
            return int(resp.status), resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode("utf-8", "replace")


def _push_one(log_: AuditLog, url: str, key: NoteKey) -> dict[str, Any]:
    cp = log_.checkpoint()
    cosigned = [s for s, w, _, _ in log_.store.cosignatures() if w == key.name]
    old = max(cosigned, default=0)
    for _attempt in range(2):
        proof = log_.prove_consistency(old, cp.size) if old <= cp.size else []
        body = "".join([f"old {old}\n", *(base64.b64encode(p).decode("ascii") + "\n" for p in proof), "\n", cp.note])
        status, text = _post(url, body.encode("utf-8"))
        if status == 409 and text.strip().isdigit() and int(text.strip()) != old and _attempt == 0:
            old = int(text.strip())  # the witness holds another size: prove from it
            if old > cp.size:
                return {"witness": url, "ok": False, "status": 409, "size": cp.size,
                        "detail": f"the witness holds a checkpoint of {old} records; the log has {cp.size}: "
                                  "the log was rolled back"}
            continue
        break
    if status != 200:
        return {"witness": url, "ok": False, "status": status, "size": cp.size, "detail": text.strip()}
    try:
        sigs = parse_note(cp.body + "\n" + text).signatures
        verify_cosignature(cp.body, sigs, key)
    except NoteError as err:
        return {"witness": url, "ok": False, "status": status, "size": cp.size, "detail": f"bad cosignature: {err}"}
    log_.add_cosignatures(cp.size, [s for s in sigs if s.name == key.name and s.key_id == key.key_id])
    return {"witness": url, "ok": True, "status": 200, "size": cp.size, "detail": ""}


def publish_checkpoint(log_: AuditLog, witnesses: Sequence[str]) -> list[dict[str, Any]]:
    """Push the head's checkpoint to each witness (``URL=VKEY``); return one result per witness.

    A witness that cannot be reached is a failed result (``ok`` false, ``detail`` says why),
    not an exception: the others are still tried.

    Raises
    ------
    AuditError
        A witness is misconfigured, or the log is empty.
    """
    results = []
    for text in witnesses:
        url, key = parse_witness(text)
        try:
            results.append(_push_one(log_, url, key))
        except (OSError, urllib.error.URLError) as err:
            results.append({"witness": url, "ok": False, "status": None, "detail": f"unreachable: {err}"})
    return results


def fetch_witness_checkpoint(url: str, origin: str) -> str | None:
    """Return the witness's last cosigned checkpoint of ``origin`` (None if it holds none).

    Raises
    ------
    AuditError
        The witness cannot be reached or answers something else.
    """
    target = url.rstrip("/") + "/checkpoint?" + urllib.parse.urlencode({"origin": origin})
    try:
        with urllib.request.urlopen(target, timeout=_TIMEOUT) as resp:  # noqa: S310 (the user's witness URL)
            return str(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise AuditError(f"witness {url} answered {err.code}") from err
    except (OSError, urllib.error.URLError) as err:
        raise AuditError(f"witness {url} cannot be reached: {err}") from err


def check_cosignature(note: str, url: str, witnesses: Sequence[str]) -> int | None:
    """Return the timestamp of the cosignature in ``note`` by the witness configured for ``url`` (None: not configured).

    Raises
    ------
    AuditError
        The witness is configured and ``note`` carries no valid cosignature by its key.
    """
    for text in witnesses:
        configured, key = parse_witness(text)
        if configured == url.rstrip("/"):
            try:
                signed = parse_note(note)
                return verify_cosignature(signed.text, signed.signatures, key)
            except NoteError as err:
                raise AuditError(f"witness {url}: its checkpoint is not cosigned by its configured key: {err}") from err
    return None


class WitnessPusher:
    """After appends, push to the witnesses every ``every`` records or ``seconds`` seconds (in a worker thread).

    A failed push is logged as a warning; ``audit verify`` reports the records not yet
    witnessed, so a witness that is down is visible, never silently skipped.
    """

    def __init__(self, witnesses: Sequence[str], every: int, seconds: float) -> None:
        for text in witnesses:
            parse_witness(text)
        self.witnesses, self.every, self.seconds = tuple(witnesses), every, seconds
        self._last_seq = 0
        self._last_time = time.monotonic()
        self._busy = threading.Lock()

    def __call__(self, log_: AuditLog, seq: int) -> None:
        """Return the :attr:`AuditLog.after_append` hook."""
        due = seq - self._last_seq >= self.every or time.monotonic() - self._last_time >= self.seconds
        if not due or not self._busy.acquire(blocking=False):
            return
        self._last_seq, self._last_time = seq, time.monotonic()
        threading.Thread(target=self._push, args=(log_,), name="facetrail-witness-push", daemon=True).start()

    def _push(self, log_: AuditLog) -> None:
        try:
            for r in publish_checkpoint(log_, self.witnesses):
                if not r["ok"]:
                    log.warning("witness %s did not cosign: %s", r["witness"], r["detail"])
        except AuditError as err:
            log.warning("pushing the checkpoint to witnesses failed: %s", err)
        finally:
            self._busy.release()
