"""Key files of the audit trail: the Ed25519 signing key and the pseudonymisation key.

Keys live in files **outside** the database, so whoever can rewrite the
database cannot sign checkpoints. The signing key file is ``$FACETRAIL_AUDIT_KEY``
if set; else a key made before keys moved out (``<db file>.audit-key``) if there is
one; else ``<key dir>/<log id>.key``, the key dir being ``$FACETRAIL_AUDIT_KEY_DIR``
or ``<config dir>/audit-keys`` (created 0700): never beside the database, so a copy
of the database folder does not carry the key. A key file readable by group or
others is refused (:class:`~audit.errors.KeyFileError` naming ``chmod 600``). Key files are created with
mode 0600 on first use (written to a private ``O_CREAT | O_EXCL`` temporary
file, then hard-linked into place, so two processes never overwrite each
other's key and nobody reads a half-written one). The pseudonymisation key (32 random bytes for HMAC-SHA256)
lives beside the signing key, at ``<signing key>.pseudonym``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import KeyFileError
from core.settings import Settings

__all__ = [
    "check_private",
    "create_private_key",
    "default_key_path",
    "fingerprint",
    "load_or_create_private_key",
    "load_private_key",
    "load_public_key_pem",
    "load_or_create_pseudonym_key",
    "public_key_pem",
]

log = logging.getLogger(__name__)


def default_key_path(db_path: str, log_id: str, settings: Settings | None = None) -> Path:
    """Return the signing key path of the log ``log_id`` in the database ``db_path`` (see the module docstring)."""
    settings = settings or Settings.from_env()
    if settings.audit_key is not None:
        return settings.audit_key
    if db_path != ":memory:":
        legacy = Path(str(Path(db_path).expanduser()) + ".audit-key")
        if legacy.exists():
            return legacy
    folder = settings.audit_key_dir or settings.config_dir / "audit-keys"
    return folder / f"{log_id}.key"


def check_private(path: Path) -> None:
    """Refuse a key file that group or others may read or write.

    Raises
    ------
    KeyFileError
        The file's mode grants group or others any access; the message names the fix.
    """
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise KeyFileError(f"cannot read audit signing key {str(path)!r}: {err}") from err
    if mode & 0o077:
        raise KeyFileError(f"audit signing key {str(path)!r} is readable by group or others (mode "
                           f"{mode & 0o777:o}); run: chmod 600 {path}")


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` (mode 0600) holding ``data``; return False if it already exists.

    The data is written to a private temporary file first and then hard-linked to
    ``path``, so another process never sees a half-written key file.
    """
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        raise KeyFileError(f"cannot create key file {str(path)!r}: {err}") from err
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as err:
            raise KeyFileError(f"cannot create key file {str(path)!r}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    log.info("created key file %s", path)
    return True


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from a PEM file.

    Raises
    ------
    KeyFileError
        If the file is missing, unreadable, readable by group or others, or not an Ed25519
        PEM private key.
    """
    check_private(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise KeyFileError(f"cannot read audit signing key {str(path)!r}: {err}") from err
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as err:
        raise KeyFileError(f"audit signing key {str(path)!r} is not a PEM private key: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"audit signing key {str(path)!r} is not an Ed25519 key")
    return key


def create_private_key(path: Path) -> Ed25519PrivateKey | None:
    """Create a new signing key file (mode 0600); return None if the file already exists."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key if _create_exclusive(path, pem) else None


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """Load the signing key, creating it (mode 0600) if the file does not exist."""
    if not path.exists():
        key = create_private_key(path)
        if key is not None:
            return key
    return load_private_key(path)


def public_key_pem(key: Ed25519PublicKey) -> str:
    """Return the public key as PEM text (SubjectPublicKeyInfo)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key_pem(pem: str | bytes) -> Ed25519PublicKey:
    """Parse a PEM public key.

    Raises
    ------
    KeyFileError
        If the text is not an Ed25519 PEM public key.
    """
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as err:
        raise KeyFileError(f"not a PEM public key: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError("the public key is not an Ed25519 key")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """Return ``sha256:<hex>`` of the raw 32-byte public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def load_or_create_pseudonym_key(path: Path) -> bytes:
    """Load (or create, 0600) the 32-byte HMAC key used to pseudonymise subject ids.

    Raises
    ------
    KeyFileError
        If the file exists but does not hold a 64-character hex key.
    """
    _create_exclusive(path, secrets.token_hex(32).encode("ascii") + b"\n")
    try:
        text = path.read_text("ascii").strip()
        return bytes.fromhex(text)
    except (OSError, ValueError) as err:
        raise KeyFileError(f"pseudonymisation key {str(path)!r} is not a hex key: {err}") from err
