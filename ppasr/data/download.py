"""Getting a public archive onto disk safely: resumable HTTP download, md5 check, safe unpacking.

Used by the ``download_data/`` scripts. A download goes to ``<name>.part`` and is resumed with an
HTTP Range request after any interruption (in the same run, with backoff, or in the next run); it
gets its final name only when complete and its md5 matches. Unpacking refuses any member that would
land outside the target folder (absolute paths, ``..``, links pointing out, device files).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from typing import Callable

from tqdm import tqdm

from ppasr.errors import UserError
from ppasr.logger import logger

USER_AGENT = "ppasr-download/1.0 (+https://github.com/yeyupiaoling/PPASR)"
CHUNK_BYTES = 1 << 20
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)
# tarfile's own safety filter (Python 3.11.4+) backs up our member checks; older Pythons rely on ours.
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def md5sum(path: str) -> str:
    """Hex md5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _request(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _expected_total(response, offset: int) -> int | None:
    """Size of the whole file from Content-Range (206) or Content-Length (200); None when unknown."""
    content_range = response.headers.get("Content-Range", "")
    if response.status == 206:
        start, _, total = content_range.removeprefix("bytes ").partition("/")
        if not start.startswith(f"{offset}-"):
            raise http.client.HTTPException(f"server answered range {content_range!r} to bytes={offset}-")
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _fetch_once(url: str, part: str, timeout: float) -> None:
    """One HTTP request appending to ``part``; raises a network error when the transfer stops early."""
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    try:
        response = _request(url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the partial file is already whole
            return
        raise
    with response:
        if response.status == 200:
            offset = 0  # the server ignored the Range header: start again
        total = _expected_total(response, offset)
        received = 0
        with open(part, "ab" if offset else "wb") as f, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=os.path.basename(part), mininterval=1.0) as bar:
            while chunk := response.read(CHUNK_BYTES):
                try:
                    f.write(chunk)
                except OSError as e:
                    raise UserError(f"cannot write {part}: {e.strerror}; free some space and rerun "
                                    f"(the download resumes where it stopped)") from e
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and offset + received < total:
        raise ConnectionError(f"connection closed at {_mib(offset + received)} of {_mib(total)}")


def download(url: str, path: str, md5: str | None, retries: int = 8, backoff: float = 1.0,
             timeout: float = 60.0) -> None:
    """Download ``url`` to ``path`` through ``path.part``, resuming after interruptions.

    A failed attempt is retried after ``backoff * 2**n`` seconds (capped at a minute), where ``n``
    counts consecutive attempts that received nothing; an attempt that made progress resets it.
    The finished file is renamed to ``path`` only if its md5 matches (``md5=None``: not checked).
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    part = path + ".part"
    if os.path.exists(part):
        logger.info(f"resuming {url} at {_mib(os.path.getsize(part))} ({part})")
    else:
        logger.info(f"downloading {url} -> {path}")
    failures = 0
    while True:
        before = os.path.getsize(part) if os.path.exists(part) else 0
        try:
            _fetch_once(url, part, timeout)
            break
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code not in (408, 429):
                raise UserError(f"{url}: HTTP {e.code} {e.reason}; check the address or use a mirror "
                                f"with --url (see README)") from e
            reason = f"HTTP {e.code}"
        except NETWORK_ERRORS as e:
            reason = f"{type(e).__name__}: {e}"
        now = os.path.getsize(part) if os.path.exists(part) else 0
        failures = 0 if now > before else failures + 1
        if failures > retries:
            raise UserError(f"download of {url} failed {failures} times in a row ({reason}); "
                            f"{_mib(now)} are kept in {part}: rerun to resume, or use a mirror with --url")
        delay = min(backoff * 2 ** failures, 60.0)
        logger.info(f"download interrupted at {_mib(now)} ({reason}); resuming in {delay:.0f} s")
        time.sleep(delay)
    verify_md5(part, md5, keep_aside=True)
    os.replace(part, path)


def verify_md5(path: str, md5: str | None, keep_aside: bool) -> None:
    """Check a file's md5; on mismatch raise a UserError (and move the file aside if it is ours)."""
    if md5 is None:
        logger.info(f"md5 of {path} not checked (--md5=None)")
        return
    logger.info(f"checking md5 of {path} ...")
    actual = md5sum(path)
    if actual == md5.lower():
        return
    message = f"md5 of {path} is {actual}, expected {md5}"
    if keep_aside:
        bad = path.removesuffix(".part") + ".md5-mismatch"
        os.replace(path, bad)
        message += (f"; the file is kept as {bad} and nothing was unpacked. Delete it and rerun to "
                    f"download again, or pass --md5 if the mirror serves a different release")
    else:
        message += "; nothing was unpacked. Pass the right archive, or its md5 with --md5"
    raise UserError(message)


def _inside(root: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _check_member(archive: str, root: str, name: str, link: str | None = None,
                  link_from_root: bool = False) -> str:
    """Return where member ``name`` lands under ``root``; refuse it if that (or its link) is outside."""
    def refuse(reason: str) -> UserError:
        return UserError(f"unsafe archive {archive}: member {name!r} {reason}; refused (nothing was "
                         f"written outside {root}). Delete the archive and download it from the official source")

    if os.path.isabs(name) or name.startswith(("/", "\\")) or os.path.splitdrive(name)[0]:
        raise refuse("has an absolute path")
    destination = os.path.join(root, name)
    if not _inside(root, destination):
        raise refuse("would land outside the target folder")
    if link is not None:
        if os.path.isabs(link) or link.startswith(("/", "\\")) or os.path.splitdrive(link)[0]:
            raise refuse(f"is a link to the absolute path {link!r}")
        base = root if link_from_root else os.path.dirname(destination)
        if not _inside(root, os.path.join(base, link)):
            raise refuse(f"is a link to {link!r}, outside the target folder")
    return destination


def _unpack_tar(archive: str, root: str, select: Callable[[str], bool], bar: tqdm) -> int:
    count = 0
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
        for member in tar:
            bar.update(raw.tell() - bar.n)
            if not select(member.name):
                continue
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                raise UserError(f"unsafe archive {archive}: member {member.name!r} is a device or fifo; refused")
            link = member.linkname if (member.issym() or member.islnk()) else None
            _check_member(archive, root, member.name, link, link_from_root=member.islnk())
            tar.extract(member, root, set_attrs=False, **_TAR_FILTER)
            count += 1
    return count


def _unpack_zip(archive: str, root: str, select: Callable[[str], bool], bar: tqdm) -> int:
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            bar.update(info.compress_size)
            if select(info.filename):
                _check_member(archive, root, info.filename)
                zf.extract(info, root)
                count += 1
    return count


def unpack(archive: str, target_dir: str, select: Callable[[str], bool] | None = None,
           progress: bool = True) -> int:
    """Extract a tar (gz/bz2/xz) or zip archive into ``target_dir``; return the number of members.

    ``select`` keeps only the members whose names it accepts. Members are checked one by one before
    they are written, so an unsafe member stops the run before anything lands outside the target.
    """
    os.makedirs(target_dir, exist_ok=True)
    root = os.path.realpath(target_dir)
    keep = select or (lambda _name: True)
    with tqdm(total=os.path.getsize(archive), unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"unpack {os.path.basename(archive)}", mininterval=1.0, leave=False,
              disable=not progress) as bar:
        try:
            if zipfile.is_zipfile(archive):
                return _unpack_zip(archive, root, keep, bar)
            return _unpack_tar(archive, root, keep, bar)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
            raise UserError(f"cannot unpack {archive}: {e}; the archive is damaged: delete it and rerun") from e


class Stages:
    """Finished steps of one corpus, kept in a small JSON file so that a rerun skips them."""

    def __init__(self, path: str):
        self.path = path
        self.record: dict = {"stages": []}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.record = json.load(f)

    def done(self, stage: str) -> bool:
        return stage in self.record["stages"]

    def mark(self, stage: str, **facts) -> None:
        """Record ``stage`` (and any facts, e.g. which archive we downloaded) atomically."""
        if stage not in self.record["stages"]:
            self.record["stages"].append(stage)
        self.record.update(facts)
        self._save()

    def reset(self) -> None:
        self.record = {"stages": []}
        self._save()

    def _save(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.record, f, ensure_ascii=False, indent=1)
        os.replace(tmp, self.path)
