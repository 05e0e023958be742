"""`facetrail datasets fetch lfw` against a local HTTP server: checksums verified, layout written."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.evaluation.fetch import ChecksumMismatch, fetch_lfw
from dashboard.cli import main


def _archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for person, count in (("Ann_Example", 3), ("Bob_Example", 1), ("Cy_Example", 8)):
            for i in range(1, count + 1):
                data = f"{person}-{i}".encode()
                info = tarfile.TarInfo(f"lfw-deepfunneled/{person}/{person}_{i:04d}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    root = tmp_path / "mirror"
    root.mkdir()
    (root / "lfw-deepfunneled.tgz").write_bytes(_archive())
    (root / "pairs.txt").write_text("10\t300\n", encoding="utf-8")
    sources = {n: ("md5", hashlib.md5((root / n).read_bytes()).hexdigest()) for n in ("lfw-deepfunneled.tgz", "pairs.txt")}

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", sources
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_writes_lfw_small(tmp_path: Path, mirror: tuple[str, dict[str, tuple[str, str]]]) -> None:
    url, sources = mirror
    dest = tmp_path / "data"
    result = fetch_lfw(dest, url_base=url, sources=sources, echo=lambda _: None)
    assert result["identities"] == 2 and result["images"] == 3 + 6
    labels = (dest / "lfw_small" / "labels.csv").read_text().splitlines()
    assert labels[0] == "image,identity,n_images_identity"
    assert labels[1] == "images/Ann_Example/Ann_Example_0001.jpg,Ann_Example,3"
    assert (dest / "lfw_small" / "images" / "Cy_Example" / "Cy_Example_0006.jpg").read_bytes() == b"Cy_Example-6"
    again = fetch_lfw(dest, url_base=url, sources=sources, echo=lambda _: None)  # cached, same result
    assert again == result


def test_checksum_mismatch_is_refused(tmp_path: Path, mirror: tuple[str, dict[str, tuple[str, str]]]) -> None:
    url, sources = mirror
    bad = {**sources, "pairs.txt": ("md5", "0" * 32)}
    with pytest.raises(ChecksumMismatch, match="differs from the pinned"):
        fetch_lfw(tmp_path / "data", url_base=url, sources=bad, echo=lambda _: None)
    assert not list((tmp_path / "data" / "downloads").glob("pairs.txt*"))


def test_cli_fetch_refuses_files_that_are_not_lfw(tmp_path: Path, mirror: tuple[str, dict[str, tuple[str, str]]],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = mirror
    code = main(["--db", str(tmp_path / "x.duckdb"), "datasets", "fetch", "lfw", "--url-base", url,
                 "--dest", str(tmp_path / "data")])
    assert code == 2
    assert "differs from the pinned" in capsys.readouterr().err


def test_demo_without_data_names_the_fetch_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["--db", str(tmp_path / "demo.duckdb"), "demo", "--no-serve", "--data", str(empty)])
    assert code == 2
    assert "facetrail datasets fetch lfw" in capsys.readouterr().err


def test_dashboard_needs_an_existing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(tmp_path / "none.duckdb"), "dashboard"]) == 2
    assert "facetrail demo --no-serve" in capsys.readouterr().err
