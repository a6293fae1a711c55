"""The download path of the dataset locator, against an HTTP server on 127.0.0.1 (never the internet)."""

import hashlib
import http.server
import io
import threading
import zipfile
from functools import partial

import pytest

from kgreason.data import DataError, DataLocator
from kgreason.data.locator import RemoteFile

PAYLOAD = b'{"id": "x"}\n'


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path/www`` on a free loopback port; yields the base URL and counts requests."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "file.jsonl").write_bytes(PAYLOAD)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("Release/Data/file.jsonl", PAYLOAD)
    (root / "release.zip").write_bytes(archive.getvalue())

    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def make_locator(tmp_path, files):
    return DataLocator(root=tmp_path / "empty-mirror", cache=tmp_path / "cache", files=files)


def test_download_verifies_and_caches(tmp_path, server):
    base, requests = server
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    locator = make_locator(tmp_path, {"demo": RemoteFile("demo/file.jsonl", f"{base}/file.jsonl", digest)})

    path = locator.path("demo")
    assert path == tmp_path / "cache" / "demo" / "file.jsonl"
    assert path.read_bytes() == PAYLOAD
    assert len(requests) == 1

    assert locator.path("demo") == path
    assert len(requests) == 1, "a cached file must not be downloaded again"


def test_download_extracts_archive_member(tmp_path, server):
    base, _ = server
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    remote = RemoteFile("demo/file.jsonl", f"{base}/release.zip", digest, "Release/Data/file.jsonl")
    path = make_locator(tmp_path, {"demo": remote}).path("demo")
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_rejected_and_nothing_kept(tmp_path, server):
    base, _ = server
    locator = make_locator(tmp_path, {"demo": RemoteFile("demo/file.jsonl", f"{base}/file.jsonl", "0" * 64)})
    with pytest.raises(DataError, match="checksum mismatch"):
        locator.path("demo")
    cached = tmp_path / "cache" / "demo"
    assert not (cached / "file.jsonl").exists()
    assert list(cached.iterdir()) == []


def test_missing_url_names_file_and_fix(tmp_path, server):
    base, _ = server
    locator = make_locator(tmp_path, {"demo": RemoteFile("demo/gone.jsonl", f"{base}/gone.jsonl", "0" * 64)})
    with pytest.raises(DataError) as error:
        locator.path("demo")
    message = str(error.value)
    assert "404" in message
    assert f"{base}/gone.jsonl" in message
    assert "KGREASON_DATA" in message


def test_mirror_preferred_over_download(tmp_path, server):
    base, requests = server
    mirrored = tmp_path / "empty-mirror" / "demo" / "file.jsonl"
    mirrored.parent.mkdir(parents=True)
    mirrored.write_bytes(PAYLOAD)
    locator = make_locator(tmp_path, {"demo": RemoteFile("demo/file.jsonl", f"{base}/file.jsonl", "0" * 64)})
    assert locator.path("demo") == mirrored
    assert requests == []


def test_download_disabled(tmp_path):
    locator = DataLocator(root=tmp_path, cache=tmp_path / "cache", allow_download=False,
                          files={"demo": RemoteFile("demo/file.jsonl", "http://127.0.0.1:9/x", "0" * 64)})
    with pytest.raises(DataError, match="put the file there"):
        locator.path("demo")


def test_environment_variable_sets_mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("KGREASON_DATA", str(tmp_path))
    assert DataLocator().root == tmp_path.resolve()
