"""``facetrail datasets fetch lfw``: download LFW (deep-funneled) from its public source, with checksums.

The archive and ``pairs.txt`` are checked against the MD5 digests published with
torchvision's LFW loader (the checksums the LFW files are commonly pinned to);
a mismatch deletes the download and fails. The images are unpacked to
``<dest>/lfw_deepfunneled/`` and a manifest in the layout the demo reads is
written to ``<dest>/lfw_small/labels.csv``: the first ``max_identities`` people
(alphabetically) with at least two images, up to six images each, with columns
``image``, ``identity``, ``n_images_identity``.

LFW has no demographic labels of its own; the shared ``lfw_small`` adds ``sex``
and ``race_usc_sail`` from third-party annotation lists that are not fetched
here. Without them the demo's per-group evaluation has only the overall row.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tarfile
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.errors import BadInput

__all__ = ["LFW_SOURCES", "DEFAULT_URL_BASE", "fetch_lfw", "ChecksumMismatch"]

DEFAULT_URL_BASE = "http://vis-www.cs.umass.edu/lfw/"

#: File name -> (algorithm, digest). Digests as published in torchvision.datasets.LFWPeople.
LFW_SOURCES: Mapping[str, tuple[str, str]] = {
    "lfw-deepfunneled.tgz": ("md5", "68331da3eb755a505a502b5aacb3c201"),
    "pairs.txt": ("md5", "9f1ba174e4e1c508ff7cdf10ac338a7d"),
}


class ChecksumMismatch(BadInput):
    """A downloaded file does not have the pinned checksum (it was deleted)."""

    code = "checksum_mismatch"


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, target: Path, algorithm: str, digest: str, echo: Callable[[str], None]) -> None:
    if target.is_file() and _digest(target, algorithm) == digest:
        echo(f"{target.name}: already downloaded, checksum ok")
        return
    partial = target.with_name(target.name + ".part")
    echo(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:  # noqa: S310
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise BadInput(f"cannot download {url}: {err}") from err
    found = _digest(partial, algorithm)
    if found != digest:
        partial.unlink()
        raise ChecksumMismatch(f"{url}: {algorithm} {found} differs from the pinned {digest}; file deleted")
    os.replace(partial, target)


def _safe_extract(archive: Path, dest: Path) -> None:
    root = dest.resolve()
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            if not (member.isdir() or member.isfile()):
                raise BadInput(f"{archive.name}: unexpected member type for {member.name!r}")
            if not (dest / member.name).resolve().is_relative_to(root):
                raise BadInput(f"{archive.name}: member {member.name!r} would leave {dest}")
        tar.extractall(dest, filter="data")


def fetch_lfw(
    dest: Path,
    *,
    url_base: str | None = None,
    sources: Mapping[str, tuple[str, str]] = LFW_SOURCES,
    max_identities: int = 463,
    per_identity: int = 6,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Download, verify and unpack LFW; write ``lfw_small/labels.csv``. Return a summary.

    Raises
    ------
    ChecksumMismatch
        A file's checksum differs from its pin.
    BadInput
        A download failed or the archive is malformed.
    """
    base = (url_base or DEFAULT_URL_BASE).rstrip("/") + "/"
    downloads = dest / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for name, (algorithm, digest) in sources.items():
        _download(base + name, downloads / name, algorithm, digest, echo)
    images_root = dest / "lfw_deepfunneled"
    if not images_root.is_dir():
        echo("unpacking lfw-deepfunneled.tgz")
        staging = dest / ".unpack"
        shutil.rmtree(staging, ignore_errors=True)
        _safe_extract(downloads / "lfw-deepfunneled.tgz", staging)
        inner = staging / "lfw-deepfunneled"
        os.replace(inner if inner.is_dir() else staging, images_root)
        shutil.rmtree(staging, ignore_errors=True)
    shutil.copyfile(downloads / "pairs.txt", images_root / "pairs.txt")
    small = dest / "lfw_small"
    (small / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    people = sorted(p for p in images_root.iterdir() if p.is_dir())
    kept = 0
    for person in people:
        files = sorted(f for f in person.iterdir() if f.suffix.lower() == ".jpg")
        if len(files) < 2:
            continue
        link = small / "images" / person.name
        if not link.exists():
            link.symlink_to(person.resolve(), target_is_directory=True)
        for f in files[:per_identity]:
            rows.append({"image": f"images/{person.name}/{f.name}", "identity": person.name,
                         "n_images_identity": len(files)})
        kept += 1
        if kept >= max_identities:
            break
    with (small / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "identity", "n_images_identity"])
        writer.writeheader()
        writer.writerows(rows)
    (small / "SOURCES.md").write_text(
        "# lfw_small (fetched)\nLabeled Faces in the Wild, deep-funneled, from "
        f"{base} (checksums verified). {kept} identities with >= 2 images, <= {per_identity} images each.\n"
        "No demographic labels: add sex/race columns to labels.csv from an annotation list you trust.\n",
        encoding="utf-8",
    )
    return {"folder": str(small), "images": len(rows), "identities": kept, "source": base}
