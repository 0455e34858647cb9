"""Shared helpers for the real data sets: one-line errors, MD5 checks, atomic downloads.

Only the standard library (``urllib``) is used to fetch files. A download goes to a temporary file
next to its destination, is hashed while it streams, and is moved into place with ``os.replace``
only once its MD5 matches: an interrupted or corrupt download never leaves a file behind that a
later run would mistake for the real one.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError  # noqa: F401  (re-exported: skipbench.data.download.DataError)
from .base import check_positive

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadFailed(DataError):
    """The file could not be fetched at all (no network, refused, HTTP error): try a mirror."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot download {url} ({reason})")
        self.url, self.reason = url, reason


def one_line(ex: BaseException | str) -> str:
    """An exception (or text) squeezed onto one line, for embedding in a :class:`DataError`."""
    text = " ".join(str(ex).split())
    if isinstance(ex, BaseException) and not text:
        return type(ex).__name__
    return text


def md5sum(path: str | os.PathLike) -> str:
    """The hex MD5 digest of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_md5(path: str | os.PathLike, md5: str) -> bool:
    """True when ``path`` is a file whose MD5 is ``md5`` (case-insensitive); False otherwise."""
    return Path(path).is_file() and md5sum(path) == md5.strip().lower()


def download(url: str, dest: str | os.PathLike, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically, verifying ``md5`` when given; returns ``dest``.

    A ``dest`` that already has the expected MD5 is kept as is. Raises :class:`DownloadFailed`
    when the URL cannot be fetched (no network, HTTP error, connection cut short) and
    :class:`DataError` when the fetched bytes have the wrong MD5; in both cases nothing is written.
    """
    dest = Path(dest)
    if md5 is not None and check_md5(dest, md5):
        return dest
    if md5 is not None and dest.is_file():
        log.info("%s has the wrong checksum: downloading it again", dest)
    log.info("downloading %s", url)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (http, https or file)
    except ValueError as ex:  # "unknown url type"
        raise DataError(f"{url}: not a URL urllib can fetch ({one_line(ex)})") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as ex:
        if isinstance(ex, urllib.error.HTTPError):
            reason = f"HTTP {ex.code} {ex.reason}"
            ex.close()  # it holds the response's socket
        else:
            reason = one_line(getattr(ex, "reason", None) or ex)
        raise DownloadFailed(url, reason) from None
    with response:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            h, size = hashlib.md5(), 0
            with os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as ex:
                        raise DownloadFailed(url, f"connection lost after {size} bytes: {one_line(ex)}") from None
                    if not chunk:
                        break
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            expected = response.headers.get("Content-Length") if response.headers else None
            if expected is not None and expected.isdigit() and int(expected) != size:
                raise DownloadFailed(url, f"connection closed after {size} of {expected} bytes")
            got = h.hexdigest()
            if md5 is not None and got != md5.strip().lower():
                raise DataError(
                    f"{url}: downloaded file has md5 {got}, expected {md5.strip().lower()}; it was deleted "
                    f"(nothing written to {dest}): retry, or fetch {dest.name} by hand and check it"
                )
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return dest


def fetch(
    what: str, files: Sequence[tuple[str, str | None]], mirrors: Sequence[str], dest_dir: str | os.PathLike
) -> list[Path]:
    """Download each ``(file name, md5)`` from the first of ``mirrors`` (base URLs) that answers.

    When no mirror answers for a file (typically: no network), the :class:`DataError` is one line
    that lists every file still missing, where they come from and where to put them by hand.
    """
    dest_dir = Path(dest_dir)
    done: list[Path] = []
    for i, (name, md5) in enumerate(files):
        failure: DownloadFailed | None = None
        for mirror in mirrors:
            try:
                done.append(download(_join(mirror, name), dest_dir / name, md5))
                failure = None
                break
            except DownloadFailed as ex:
                log.info("%s", ex)
                failure = failure or ex
        if failure is not None:
            missing = ", ".join(n for n, _ in files[i:])
            raise DataError(
                f"{what}: cannot download {failure.url} ({failure.reason}); with no network, "
                f"put {missing} (from {mirrors[0]}) in {dest_dir.resolve()}"
            )
    return done


def _join(base: str, name: str) -> str:
    return base if base.endswith(name) else base.rstrip("/") + "/" + name


def check_count(what: str, name: str, value: int | None, available: int | None = None) -> None:
    """Validate a ``train_size``-style argument: None, or 1 <= value <= available."""
    if value is None:
        return
    check_positive(what, name, value, " (or None for all)")
    if available is not None and value > available:
        raise DataError(f"{what}: {name}={value} but only {available} images are available")
