r"""Signed checkpoints as C2SP signed notes: the text a verifier reads, and how it is signed and cosigned.

Pure text and Ed25519, no database: a third party can check everything here against
the public specifications (c2sp.org/signed-note, c2sp.org/tlog-checkpoint,
c2sp.org/tlog-cosignature).

* **Checkpoint body** (tlog-checkpoint): three lines, each ending in a newline: the
  log's *origin* (``facetrail.example/<log id>``), the tree size in decimal, and the
  base64 RFC 6962 root of the Merkle tree over the records' entry hashes.
* **Signed note** (signed-note): the body, a blank line, then one line per signature:
  ``— <key name> base64(key ID || signature)``. The log's key name is its origin; its
  key ID is the first 4 bytes of ``SHA-256(key name || 0x0A || 0x01 || public key)`` and
  the signature is Ed25519 over the body.
* **Cosignature** (tlog-cosignature, ``cosignature/v1``): a witness's note signature
  with key ID ``SHA-256(name || 0x0A || 0x04 || public key)[:4]`` whose signature is
  ``timestamp (u64, big-endian) || Ed25519(b"cosignature/v1\ntime <timestamp>\n" || body)``.
* **Verifier key** (*vkey*): ``<name>+<hex key ID>+base64(type byte || public key)``,
  how keys are written in settings and on the command line.

:class:`Checkpoint` is the one checkpoint type of the trail: the parsed body plus the
exact note text it came from, so what is stored, printed and published is the text a
verifier reads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import AuditError

__all__ = [
    "COSIGNATURE_V1",
    "ED25519",
    "Checkpoint",
    "NoteError",
    "NoteKey",
    "NoteSignature",
    "SignedNote",
    "checkpoint_body",
    "cosign",
    "origin_for",
    "parse_checkpoint",
    "parse_note",
    "parse_vkey",
    "raw_public_key",
    "sign_checkpoint_note",
    "verify_checkpoint",
    "verify_cosignature",
]

#: Signature type byte of Ed25519 note signatures (signed-note).
ED25519 = 0x01
#: Signature type byte of timestamped Ed25519 checkpoint cosignatures (tlog-cosignature).
COSIGNATURE_V1 = 0x04

#: Most signature lines a note may carry (the spec asks verifiers to accept at least 16).
MAX_SIGNATURES = 64
#: Largest note accepted, in bytes.
MAX_NOTE_BYTES = 64 * 1024
#: Prefix of a log origin; the rest is the log's id, generated when the log is created.
ORIGIN_PREFIX = "facetrail.example/"

_DASH = "\u2014 "
_SIZE = re.compile(r"^(0|[1-9][0-9]*)$")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(AuditError):
    """A signed note, checkpoint, cosignature or verifier key is malformed or does not verify."""

    code = "bad_note"


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    """Return the 32-byte RFC 8032 encoding of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() for c in name) and "+" not in name


def origin_for(log_id: str) -> str:
    """Return the origin line of the log with id ``log_id``."""
    return ORIGIN_PREFIX + log_id


@dataclass(frozen=True)
class NoteKey:
    """A named public key that verifies note signatures of one type (the log's, or a witness's)."""

    name: str
    """Key name: the log's origin, or the witness's name."""
    public_key: bytes
    """Raw 32-byte Ed25519 public key."""
    sig_type: int = ED25519
    """:data:`ED25519` (a log key) or :data:`COSIGNATURE_V1` (a witness key)."""

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise NoteError(f"key name {self.name!r} must be non-empty, without spaces or '+'")
        if len(self.public_key) != 32:
            raise NoteError(f"an Ed25519 public key has 32 bytes, got {len(self.public_key)}")
        if self.sig_type not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"unsupported signature type {self.sig_type:#04x}")

    @classmethod
    def of(cls, name: str, key: Ed25519PublicKey | Ed25519PrivateKey, sig_type: int = ED25519) -> NoteKey:
        """Return the note key of ``key`` (a private key gives its public half) under ``name``."""
        public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
        return cls(name, raw_public_key(public), sig_type)

    @property
    def key_id(self) -> bytes:
        """``SHA-256(name || 0x0A || type || public key)[:4]``."""
        return hashlib.sha256(self.name.encode("utf-8") + b"\n" + bytes([self.sig_type]) + self.public_key).digest()[:4]

    def ed25519(self) -> Ed25519PublicKey:
        """Return the key as a ``cryptography`` public key."""
        return Ed25519PublicKey.from_public_bytes(self.public_key)

    def vkey(self) -> str:
        """Return the verifier key string ``<name>+<hex key ID>+base64(type || key)``."""
        material = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{material}"


def parse_vkey(text: str) -> NoteKey:
    """Parse a verifier key (``name+hex id+base64``), checking that its key ID matches its key.

    Raises
    ------
    NoteError
        Not three ``+``-separated parts, bad base64, an unsupported type, or a key ID
        that is not the one the name and key give.
    """
    parts = text.strip().split("+", 2)  # the base64 key may itself hold '+'
    if len(parts) != 3:
        raise NoteError(f"a verifier key is <name>+<hex key id>+<base64 key>, got {text.strip()!r}")
    name, hex_id, material = parts
    try:
        key_id = bytes.fromhex(hex_id)
        raw = base64.b64decode(material, validate=True)
    except (ValueError, binascii.Error) as err:
        raise NoteError(f"verifier key {text.strip()!r} is not hex and base64: {err}") from err
    if len(key_id) != 4 or len(raw) != 33:
        raise NoteError(f"verifier key {text.strip()!r}: a 4-byte key ID and a type byte + 32-byte key expected")
    key = NoteKey(name, raw[1:], raw[0])
    if key.key_id != key_id:
        raise NoteError(f"verifier key {text.strip()!r}: key ID {hex_id} is not the ID of its name and key")
    return key


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    """Key name."""
    key_id: bytes
    """4-byte key ID."""
    signature: bytes
    """What follows the key ID (an Ed25519 signature, or timestamp + signature for a cosignature)."""

    def line(self) -> str:
        """Return the signature line, newline included."""
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode('ascii')}\n"


@dataclass(frozen=True)
class SignedNote:
    """A parsed signed note: its text (the signed bytes) and its signature lines."""

    text: str
    """The note text, final newline included (what the signatures sign)."""
    signatures: tuple[NoteSignature, ...]
    """Signature lines in order."""

    def render(self) -> str:
        """Return the note as text: text, blank line, signature lines."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def by(self, key: NoteKey) -> list[NoteSignature]:
        """Return the signatures whose name and key ID are ``key``'s (others are ignored, as the spec asks)."""
        return [s for s in self.signatures if s.name == key.name and s.key_id == key.key_id]


def parse_note(note: str | bytes) -> SignedNote:
    """Parse a signed note (signed-note format), without checking any signature.

    Raises
    ------
    NoteError
        Not UTF-8, control characters, no blank line before the signatures, a malformed
        signature line, or more than :data:`MAX_SIGNATURES` signatures.
    """
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise NoteError(f"a signed note is at most {MAX_NOTE_BYTES} bytes, got {len(note)}")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as err:
            raise NoteError(f"a signed note must be UTF-8: {err}") from err
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise NoteError(f"a signed note is at most {MAX_NOTE_BYTES} bytes")
    if _CONTROL.search(note):
        raise NoteError("a signed note must not hold control characters other than newline")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("a signed note is text, a blank line and signature lines, each ending in a newline")
    text, lines = note[: cut + 1], note[cut + 2 :].split("\n")[:-1]
    if not lines:
        raise NoteError("a signed note has at least one signature line")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a signed note has at most {MAX_SIGNATURES} signatures, got {len(lines)}")
    signatures = []
    for line in lines:
        if not line.startswith(_DASH):
            raise NoteError(f"signature line {line!r} does not start with an em dash and a space")
        name, _, b64 = line[len(_DASH):].partition(" ")
        if not _valid_name(name) or not b64 or " " in b64:
            raise NoteError(f"signature line {line!r} is not '\u2014 <key name> <base64>'")
        try:
            blob = base64.b64decode(b64, validate=True)
        except binascii.Error as err:
            raise NoteError(f"signature line {line!r}: the signature is not base64") from err
        if len(blob) < 5:
            raise NoteError(f"signature line {line!r}: a signature is a 4-byte key ID and the signature")
        signatures.append(NoteSignature(name, blob[:4], blob[4:]))
    return SignedNote(text, tuple(signatures))


# -- checkpoints ---------------------------------------------------------------------------------------


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """Return the tlog-checkpoint note text: origin, size and base64 root, each line ending in a newline."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


@dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint: the log's Merkle tree head at ``size``, and the note text it is read from."""

    origin: str
    """The log's origin line."""
    size: int
    """Tree size: records ``1..size``."""
    root: bytes
    """RFC 6962 root of the tree over the entry hashes of records ``1..size``."""
    note: str
    """The signed note exactly as stored, published and read by a verifier."""

    @property
    def seq(self) -> int:
        """The last record covered (the tree size)."""
        return self.size

    @property
    def body(self) -> str:
        """The signed text (origin, size, root lines)."""
        return checkpoint_body(self.origin, self.size, self.root)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: ``origin``, ``size``, ``root`` (base64, as in the note) and ``note``, with ``seq``."""
        return {"origin": self.origin, "size": self.size, "root": base64.b64encode(self.root).decode("ascii"),
                "root_hex": self.root.hex(), "seq": self.size, "note": self.note}


def parse_checkpoint(note: str | bytes) -> tuple[Checkpoint, SignedNote]:
    """Parse a checkpoint note (tlog-checkpoint body in a signed note), without checking signatures.

    Raises
    ------
    NoteError
        The note is malformed, or its text is not origin, size (decimal, no leading zero)
        and a base64 32-byte root, with only non-empty extension lines after them.
    """
    signed = parse_note(note)
    lines = signed.text.split("\n")[:-1]
    if len(lines) < 3 or not all(lines):
        raise NoteError("a checkpoint's text is three non-empty lines: origin, tree size, root hash")
    origin, size, root64 = lines[0], lines[1], lines[2]
    if not _SIZE.match(size):
        raise NoteError(f"checkpoint tree size {size!r} is not a decimal number without leading zeroes")
    try:
        root = base64.b64decode(root64, validate=True)
    except binascii.Error as err:
        raise NoteError(f"checkpoint root {root64!r} is not base64") from err
    if len(root) != 32:
        raise NoteError(f"checkpoint root has {len(root)} bytes, not 32 (SHA-256)")
    text = signed.render() if isinstance(note, bytes) else note
    return Checkpoint(origin, int(size), root, text), signed


def sign_checkpoint_note(origin: str, size: int, root: bytes, key: Ed25519PrivateKey) -> str:
    """Return the checkpoint note for ``(origin, size, root)`` signed by ``key`` under the name ``origin``."""
    body = checkpoint_body(origin, size, root)
    signature = NoteSignature(origin, NoteKey.of(origin, key).key_id, key.sign(body.encode("utf-8")))
    return body + "\n" + signature.line()


def _verifies(key: NoteKey, signature: bytes, message: bytes) -> bool:
    try:
        key.ed25519().verify(signature, message)
    except InvalidSignature:
        return False
    return True


def verify_checkpoint(note: str | bytes, keys: Iterable[NoteKey], origin: str | None = None) -> Checkpoint:
    """Parse a checkpoint and check it is signed by one of ``keys`` (signed-note rules).

    Signatures by unknown keys are ignored; a signature by a known key that does not
    verify rejects the note; at least one known key's signature must verify.

    Parameters
    ----------
    keys
        The log keys trusted for this origin (:data:`ED25519` keys named as the origin).
    origin
        The origin the checkpoint must have (``None``: any).

    Raises
    ------
    NoteError
        Malformed; another origin; no signature by a trusted key; or one that does not verify.
    """
    cp, signed = parse_checkpoint(note)
    if origin is not None and cp.origin != origin:
        raise NoteError(f"checkpoint is for the log {cp.origin!r}, not {origin!r}")
    message = signed.text.encode("utf-8")
    verified = False
    for key in keys:
        if key.sig_type != ED25519:
            continue
        for sig in signed.by(key):
            if not _verifies(key, sig.signature, message):
                raise NoteError(f"checkpoint signature by {key.name} ({key.key_id.hex()}) does not verify")
            verified = True
    if not verified:
        raise NoteError(f"checkpoint of {cp.origin!r} at size {cp.size} carries no signature by a trusted key")
    return cp


# -- cosignatures (tlog-cosignature, cosignature/v1) ---------------------------------------------------


def _cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode("ascii") + body.encode("utf-8")


def cosign(body: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> NoteSignature:
    """Return a witness's ``cosignature/v1`` of the checkpoint text ``body`` at POSIX time ``timestamp``.

    Raises
    ------
    NoteError
        For a timestamp outside ``1 .. 2**63 - 1``.
    """
    if not 0 < timestamp < 2**63:
        raise NoteError(f"a cosignature timestamp is a positive 63-bit number, got {timestamp}")
    witness = NoteKey.of(name, key, COSIGNATURE_V1)
    signature = key.sign(_cosigned_message(body, timestamp))
    return NoteSignature(name, witness.key_id, struct.pack(">Q", timestamp) + signature)


def verify_cosignature(body: str, signatures: Sequence[NoteSignature], witness: NoteKey) -> int:
    """Return the timestamp of ``witness``'s valid cosignature of ``body`` among ``signatures``.

    Raises
    ------
    NoteError
        ``witness`` is not a cosignature key, none of the signatures is by it, or one by it
        does not verify.
    """
    if witness.sig_type != COSIGNATURE_V1:
        raise NoteError(f"{witness.name}: a witness key has signature type 0x04, not {witness.sig_type:#04x}")
    found = [s for s in signatures if s.name == witness.name and s.key_id == witness.key_id]
    if not found:
        raise NoteError(f"no cosignature by the witness {witness.name} ({witness.key_id.hex()})")
    stamp = 0
    for sig in found:
        if len(sig.signature) != 72:
            raise NoteError(f"a cosignature/v1 is 8 + 64 bytes, got {len(sig.signature)}")
        timestamp = struct.unpack(">Q", sig.signature[:8])[0]
        if not _verifies(witness, sig.signature[8:], _cosigned_message(body, timestamp)):
            raise NoteError(f"cosignature by {witness.name} does not verify")
        stamp = max(stamp, timestamp)
    return stamp


def same_root(a: bytes, b: bytes) -> bool:
    """Compare two roots in constant time."""
    return hmac.compare_digest(a, b)
