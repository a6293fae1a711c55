"""Find dataset files in a local mirror, or download them from their official URLs.

Each file is known by a key such as ``csqa/train``. The locator looks for it, in order, in the
mirror folder (``data.root``, else ``KGREASON_DATA``, else ``../shared/data`` beside the project
root) and in the download cache; failing both, it downloads the official release into the cache,
checks its SHA-256 against the digest recorded here (taken from the official files), and only
then renames it into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from kgreason.data.errors import DataError
from kgreason.io import sha256_file
from kgreason.runtime import cache_dir, project_root, resolve_path

logger = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30
"""Seconds to wait for a server before a download counts as failed."""

_OBQA_ZIP = "https://s3-us-west-2.amazonaws.com/ai2-website/data/OpenBookQA-V1-Sep2018.zip"
_OBQA_DIR = "obqa/OpenBookQA-V1-Sep2018/Data"
# NOTE: the CoS-E and in-house split URLs follow the current layout of their GitHub repositories
# (salesforce/cos-e, michiyasunaga/qagnn); if a repository moves a file, the download fails with
# the URL in the message and the mirror remains the way to supply it.
_COSE_URL = "https://raw.githubusercontent.com/salesforce/cos-e/master/data/v1.11"


@dataclass(frozen=True)
class RemoteFile:
    """One dataset file: where it sits in the mirror and where it is published."""

    relative_path: str
    """Path inside the mirror folder and the download cache."""

    url: str
    """Official URL of the file, or of the zip archive that holds it."""

    sha256: str
    """Hex SHA-256 of the file itself (not of the archive)."""

    archive_member: str | None = None
    """Path of the file inside the zip archive at ``url``; None when ``url`` is the file."""


FILES: dict[str, RemoteFile] = {
    "csqa/train": RemoteFile(
        "csqa/train_rand_split.jsonl",
        "https://s3.amazonaws.com/commensenseqa/train_rand_split.jsonl",
        "58ffa3c8472410e24b8c43f423d89c8a003d8284698a6ed7874355dedd09a2fb",
    ),
    "csqa/dev": RemoteFile(
        "csqa/dev_rand_split.jsonl",
        "https://s3.amazonaws.com/commensenseqa/dev_rand_split.jsonl",
        "3210497fdaae614ac085d9eb873dd7f4d49b6f965a93adadc803e1229fd8a02a",
    ),
    "csqa/test": RemoteFile(
        "csqa/test_rand_split_no_answers.jsonl",
        "https://s3.amazonaws.com/commensenseqa/test_rand_split_no_answers.jsonl",
        "b426896d71a9cd064cf01cfaf6e920817c51701ef66028883ac1af2e73ad5f29",
    ),
    "csqa/inhouse_qids": RemoteFile(
        "csqa-extras/inhouse_split_qids.txt",
        "https://raw.githubusercontent.com/michiyasunaga/qagnn/main/data/csqa/inhouse_split_qids.txt",
        "bc24a08c60927c72510e2f046929178b6baf9f9b26b3ac103b63bcff8f4d1d6b",
    ),
    "cose/train": RemoteFile(
        "cos-e/cose_train_v1.11.jsonl",
        f"{_COSE_URL}/train/cose_train_v1.11.jsonl",
        "001661838a3185ee96b94ea012370f1e815a63f346bab3341ad2778f9e30def1",
    ),
    "cose/dev": RemoteFile(
        "cos-e/cose_dev_v1.11.jsonl",
        f"{_COSE_URL}/dev/cose_dev_v1.11.jsonl",
        "6102766eb61c9f50b36513ca234bf542cf880b170cd84e16374eb22a82f6ba11",
    ),
    "obqa/train": RemoteFile(
        f"{_OBQA_DIR}/Main/train.jsonl", _OBQA_ZIP,
        "388ce25926fa33b573ba6556d7245a6185f612dedf919871b6acb9340c8497a5",
        "OpenBookQA-V1-Sep2018/Data/Main/train.jsonl",
    ),
    "obqa/dev": RemoteFile(
        f"{_OBQA_DIR}/Main/dev.jsonl", _OBQA_ZIP,
        "a08f720be757a0f0b6aaf8e1e1162c2b05a882c9c031d2559ba3d5467d023466",
        "OpenBookQA-V1-Sep2018/Data/Main/dev.jsonl",
    ),
    "obqa/test": RemoteFile(
        f"{_OBQA_DIR}/Main/test.jsonl", _OBQA_ZIP,
        "feb2bd9bfa6161dca4c44ce90e51e8cdada83eb5061407fcdc5005e44aaf2313",
        "OpenBookQA-V1-Sep2018/Data/Main/test.jsonl",
    ),
    "obqa/openbook": RemoteFile(
        f"{_OBQA_DIR}/Main/openbook.txt", _OBQA_ZIP,
        "42daf7849bd9ad1096599279e8875038fe8bf55e35c4757d67ec5a2f51ad795c",
        "OpenBookQA-V1-Sep2018/Data/Main/openbook.txt",
    ),
    "obqa/train_facts": RemoteFile(
        f"{_OBQA_DIR}/Additional/train_complete.jsonl", _OBQA_ZIP,
        "804c5117c096a047e3e826627efd472902e6717e51f5deb1ab831a6465f6098f",
        "OpenBookQA-V1-Sep2018/Data/Additional/train_complete.jsonl",
    ),
    "obqa/dev_facts": RemoteFile(
        f"{_OBQA_DIR}/Additional/dev_complete.jsonl", _OBQA_ZIP,
        "aa697e2c1ea4cd4ce7bbf1c64dc3385940a1399448a00a9d62a78b85109f627d",
        "OpenBookQA-V1-Sep2018/Data/Additional/dev_complete.jsonl",
    ),
    "obqa/test_facts": RemoteFile(
        f"{_OBQA_DIR}/Additional/test_complete.jsonl", _OBQA_ZIP,
        "2a5566ba69bb7196e3b24aa26fcfeea717272dfad6527aebd5e3a6fc0a121ace",
        "OpenBookQA-V1-Sep2018/Data/Additional/test_complete.jsonl",
    ),
}


def default_mirror() -> Path:
    """KGREASON_DATA if set, else ../shared/data beside the project root."""
    if "KGREASON_DATA" in os.environ:
        return Path(os.path.expanduser(os.environ["KGREASON_DATA"])).resolve()
    return (project_root().parent / "shared" / "data").resolve()


class DataLocator:
    """Resolve dataset file keys to local paths, downloading into the cache when needed."""

    def __init__(
        self,
        root: str | Path | None = None,
        cache: str | Path | None = None,
        files: dict[str, RemoteFile] | None = None,
        allow_download: bool = True,
    ):
        self.root = resolve_path(root) if root else default_mirror()
        self.cache = Path(cache) if cache else cache_dir() / "data"
        self.files = FILES if files is None else files
        self.allow_download = allow_download

    def path(self, key: str) -> Path:
        """Return a local path holding the file ``key``, downloading and verifying it if needed."""
        if key not in self.files:
            raise DataError(f"unknown dataset file {key!r}; known files: {', '.join(sorted(self.files))}")
        remote = self.files[key]

        mirrored = self.root / remote.relative_path
        if mirrored.is_file():
            return mirrored
        cached = self.cache / remote.relative_path
        if cached.is_file():
            return cached

        where = f"not found in the mirror ({mirrored}) or the download cache ({cached})"
        if not self.allow_download:
            raise DataError(f"dataset file {key!r} {where}; put the file there or set KGREASON_DATA to a mirror folder")
        logger.info("%s: %s; downloading %s", key, where, remote.url)
        try:
            self._download(remote, cached)
        except (urllib.error.URLError, OSError, zipfile.BadZipFile, KeyError) as error:
            raise DataError(
                f"dataset file {key!r} {where}, and the download from {remote.url} failed ({error}); "
                f"copy the file to {mirrored} or set KGREASON_DATA to a folder that has it"
            ) from None
        return cached

    def _download(self, remote: RemoteFile, target: Path) -> None:
        """Fetch ``remote`` (extracting it from its archive), verify the digest, and rename into ``target``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as scratch:
            fetched = Path(scratch) / "fetched"
            fetch_url(remote.url, fetched)

            if remote.archive_member is not None:
                extracted = Path(scratch) / "member"
                with zipfile.ZipFile(fetched) as archive, archive.open(remote.archive_member) as member:
                    with open(extracted, "wb") as stream:
                        shutil.copyfileobj(member, stream)
                fetched = extracted

            digest = sha256_file(fetched)
            if digest != remote.sha256:
                raise DataError(
                    f"checksum mismatch for {remote.url}: expected sha256 {remote.sha256}, got {digest}; "
                    "the server may have changed the file, so download it by hand and compare"
                )
            os.replace(fetched, target)


def fetch_url(url: str, destination: Path) -> None:
    """Stream ``url`` to ``destination`` with a progress bar; raises URLError or OSError on failure."""
    request = urllib.request.Request(url, headers={"User-Agent": "kgreason"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, open(destination, "wb") as stream:
        total = int(response.headers.get("Content-Length") or 0) or None
        digest = hashlib.sha256()
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, leave=False) as progress:
            while chunk := response.read(1 << 16):
                stream.write(chunk)
                digest.update(chunk)
                progress.update(len(chunk))
    logger.debug("downloaded %s (sha256 %s)", url, digest.hexdigest())
