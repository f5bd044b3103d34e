"""The one place that downloads anything, and only when the user runs `mplug2-search fetch-checkpoint`.

A download goes to a `.partial` file that replaces the target only once it is whole: its length matches what the
server announced (and the recorded size), and its sha256 the recorded one. A failure says which address was tried
and why, so the caller can tell the user how to fetch the file by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


class DownloadError(OSError):
    """A file could not be fetched from `url`; `reason` says why in words."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class ChecksumError(ValueError):
    """A file is not the one expected (size or sha256 differ)."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    update_with_file(digest, path)
    return digest.hexdigest()


def update_with_file(digest: hashlib._Hash, path: str | Path) -> None:
    """Feed a file to a running digest a chunk at a time: checkpoints run to gigabytes."""
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)


def verify_file(path: str | Path, sha256: str | None = None, size: int | None = None) -> None:
    """Raise ChecksumError unless `path` has the expected size and sha256 (each checked only when given)."""
    path = Path(path)
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise ChecksumError(
            f"{path} has {actual} bytes, not the {size} of the released file (cut short or another file)"
        )
    if sha256 is not None:
        digest = sha256_of(path)
        if digest != sha256:
            raise ChecksumError(f"{path} has sha256 {digest}, not the released file's {sha256}")


def download(
    url: str, target: str | Path, sha256: str | None = None, size: int | None = None, timeout_s: float = 60
) -> Path:
    """Fetch `url` to `target` atomically and verify it. Raises DownloadError (network, HTTP) or ChecksumError."""
    from tqdm import tqdm

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(partial, "wb") as handle:
            announced = response.headers.get("Content-Length")
            total = int(announced) if announced and announced.isdigit() else size
            # disable=None: a bar on a terminal, nothing in logs and pipes
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=None) as bar:
                while chunk := response.read(CHUNK):
                    digest.update(chunk)
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(url, f"the server answered HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(url, f"cannot reach the server ({error.reason})") from None
    except (TimeoutError, ConnectionError) as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(url, f"the connection failed after {received} bytes ({error})") from None
    if announced and announced.isdigit() and received != int(announced):
        partial.unlink(missing_ok=True)
        raise DownloadError(url, f"the transfer stopped after {received} of {announced} bytes; run the command again")
    try:
        if size is not None and received != size:
            raise ChecksumError(f"{url} gave {received} bytes, not the {size} of the released file")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ChecksumError(f"{url} gave a file with sha256 {digest.hexdigest()}, not the expected {sha256}")
    except ChecksumError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target


def fetch_to(source: str | Path, target: str | Path) -> Path:
    """`source` (an http(s)/file URL or a local path) as the file `target`: downloaded, or copied."""
    text = str(source)
    if "://" in text:
        return download(text, target)
    path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return Path(target)
