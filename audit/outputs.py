"""The ``--out`` guard: the one check every command that writes a file calls first.

:func:`check_out_path` refuses to write over the database, its write-ahead log, a
key file (the audit signing key, the pseudonymisation key, the key store), or, unless
``force``, any file that already exists. Paths are compared after resolving symbolic
links, and an existing file is also compared by identity (device and inode), so a
link or a second name of a protected file is refused too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from audit.errors import AuditError

__all__ = ["OutputRefused", "check_out_path", "protected_paths"]


class OutputRefused(AuditError):
    """An output path names a file facetrail must never overwrite, or one that exists (without ``--force``)."""

    code = "output_refused"


def protected_paths(db_path: str, key_paths: Iterable[str | os.PathLike[str] | None] = (), *,
                    keystore: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the files an ``--out`` may never name.

    The database, its WAL, its key store (``<db>.keys``, and ``keystore`` where
    ``FACETRAIL_KEYSTORE`` puts it elsewhere), its review evidence folder (``<db>.evidence/``),
    and the given key files with their pseudonymisation (``.pseudonym``) and blind-review
    (``.blind``) keys.
    """
    out: list[Path] = []
    if db_path != ":memory:":
        db = Path(db_path).expanduser()
        out += [db, Path(f"{db}.wal"), Path(f"{db}.keys"), Path(f"{db}.evidence")]
    if keystore is not None:
        out.append(Path(keystore).expanduser())
    for key in key_paths:
        if key is not None:
            k = Path(key).expanduser()
            out += [k, Path(f"{k}.pseudonym"), Path(f"{k}.blind")]
    return out


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_out_path(path: str | os.PathLike[str], protected: Iterable[Path], *, force: bool = False) -> Path:
    """Return ``path`` as a :class:`Path` if a command may write it.

    Parameters
    ----------
    protected
        Files never to overwrite (:func:`protected_paths`); a path inside a protected
        folder (a key folder) is refused too.
    force
        Allow replacing an existing file that is not protected.

    Raises
    ------
    OutputRefused
        The path is a protected file (or inside a protected folder), a folder, or an
        existing file without ``force``.
    """
    out = Path(path).expanduser()
    for p in protected:
        if _same(out, p) or out.resolve().is_relative_to(p.resolve()):  # inside a folder (made yet or not)
            raise OutputRefused(f"refusing to write {str(out)!r}: it is {str(p)!r}, which facetrail must never "
                                "overwrite (the database, its write-ahead log or a key file)")
    if out.is_dir():
        raise OutputRefused(f"refusing to write {str(out)!r}: it is a folder; give a file name")
    if out.exists() and not force:
        raise OutputRefused(f"refusing to overwrite the existing file {str(out)!r}; pass --force to replace it")
    return out
