"""Getting a public archive onto disk safely: resumable HTTP download, md5 check, safe unpacking.

Used by the ``download_data/`` scripts. A download goes to ``<name>.part`` and is resumed with an
HTTP Range request after any interruption (in the same run, with backoff, or in the next run); it
gets its final name only when complete and its md5 matches. Unpacking checks every member before it
writes anything and refuses an archive with a member that could reach outside the target folder
(absolute paths, ``..``, hard links, symlinks resolving outside, devices); it never writes through a link.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import lzma
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from typing import Callable

from tqdm import tqdm

from ppasr.errors import UserError
from ppasr.logger import logger

USER_AGENT = "ppasr-download/1.0 (+https://github.com/yeyupiaoling/PPASR)"
CHUNK_BYTES = 1 << 20
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


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


def is_inside(root: str, path: str) -> bool:
    """Whether ``path``, all links resolved, is ``root`` (a realpath) or lies below it."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


MAX_MEMBERS = 500_000  # the largest corpus we fetch (THCHS-30) has ~50k; a flood of headers is an attack
_LINK_HOPS = 40  # as the kernel's limit on symlinks followed while resolving one path


@dataclass
class _Member:
    """One archive member, checked: where it lands (path parts under the target) and what it is."""
    parts: tuple[str, ...]
    kind: str  # "file", "dir" or "symlink"
    size: int
    link: str
    source: object  # TarInfo or ZipInfo, to read the data from


def _refusal(archive: str, root: str, name: str, reason: str) -> UserError:
    if len(name) > 200:  # a hostile name can be megabytes long: keep the error to one readable line
        name = name[:200] + "…"
    return UserError(f"unsafe archive {archive}: member {name!r} {reason}; refused, nothing was unpacked "
                     f"into {root}. Delete the archive and download it from the official source")


def _parts(archive: str, root: str, name: str, limits: tuple[int, int]) -> tuple[str, ...]:
    """The path parts of member ``name`` under ``root``; refuse absolute, ``..``, NUL and over-long names."""
    if "\0" in name:
        raise _refusal(archive, root, name, "has a NUL byte in its name")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or os.path.splitdrive(name)[0]:
        raise _refusal(archive, root, name, "has an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise _refusal(archive, root, name, "has a '..' in its path")
    name_max, path_max = limits
    if any(len(os.fsencode(p)) > name_max for p in parts) or \
            len(os.fsencode(os.path.join(root, *parts))) >= path_max:
        raise _refusal(archive, root, name, f"has a name longer than this file system allows "
                                            f"({name_max} bytes a name, {path_max} a path)")
    return parts


def _link_stays_inside(root: str, parts: tuple[str, ...], link: str, links: dict, known: set) -> bool:
    """Whether symlink ``parts -> link`` resolves inside ``root`` once the whole archive is unpacked.

    Every link on the way is followed as the kernel would (``links``: the archive's final symlinks);
    where the path leaves what the archive creates, the files already on disk decide (realpath).
    """
    if link.startswith("/") or "\0" in link:
        return False
    stack, pending, hops = list(parts[:-1]), link.split("/"), 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return False
            stack.pop()
            continue
        stack.append(part)
        key = tuple(stack)
        if key in links:
            hops += 1
            target = links[key]
            if hops > _LINK_HOPS or target.startswith("/") or "\0" in target:
                return False
            stack.pop()
            pending = target.split("/") + pending
        elif key not in known:
            return is_inside(root, os.path.join(root, *stack, *pending))
    return True


def _check_all(archive: str, root: str, entries: list[tuple[str, str, int, str, object]]) -> list[_Member]:
    """Check every member before anything is written, so that a refused archive leaves no trace.

    Refused: absolute paths, ``..``, NUL bytes, names too long for the file system, hard links,
    devices and fifos, anything inside a symlink (of the archive or already on disk), symlinks whose
    final target (after the whole archive is applied) leaves ``root``, and more bytes than the disk has free.
    """
    limits = (os.pathconf(root, "PC_NAME_MAX"), os.pathconf(root, "PC_PATH_MAX"))
    members, links, known = [], {}, set()
    for name, kind, size, link, source in entries:
        if kind not in ("file", "dir", "symlink"):
            raise _refusal(archive, root, name, f"is a {kind} (only files, folders and symlinks that stay "
                                                f"inside are accepted: no corpus needs more)")
        member = _Member(_parts(archive, root, name, limits), kind, size, link, source)
        if not member.parts:
            continue
        members.append(member)
        for i in range(1, len(member.parts) + 1):
            known.add(member.parts[:i])
        if kind == "symlink":
            links[member.parts] = link
        else:
            links.pop(member.parts, None)
    folders = {m.parts[:i] for m in members for i in range(1, len(m.parts) + (m.kind == "dir"))}
    for folder in sorted(folders):  # a link already on disk where the archive needs a folder (a former run's?)
        if os.path.islink(os.path.join(root, *folder)):
            raise UserError(f"cannot unpack {archive}: {os.path.join(root, *folder)} is a link, and nothing is "
                            f"written through one. Remove it and rerun (to keep a corpus on another disk, make "
                            f"the target folder itself a link)")
    ever_links = {m.parts for m in members if m.kind == "symlink"}
    for m in members:
        shown = "/".join(m.parts)
        if any(m.parts[:i] in ever_links for i in range(1, len(m.parts))):
            raise _refusal(archive, root, shown, "lies inside a symlink of the archive")
        if m.kind == "symlink" and not _link_stays_inside(root, m.parts, m.link, links, known):
            raise _refusal(archive, root, shown, f"is a link to {m.link!r}, which leaves the target folder")
    needed, free = sum(m.size for m in members), shutil.disk_usage(root).free
    if needed > free:
        raise UserError(f"{archive} unpacks to {_mib(needed)} but {root} has only {_mib(free)} free; "
                        f"free some space and rerun")
    return members


def _real_dir(archive: str, root: str, parts: tuple[str, ...]) -> str:
    """Create the folders ``parts`` under ``root`` without ever following a link; return the path."""
    path = root
    for part in parts:
        path = os.path.join(path, part)
        try:
            os.mkdir(path)
        except FileExistsError:
            if os.path.islink(path) or not os.path.isdir(path):
                raise UserError(f"cannot unpack {archive}: {path} is a link or a file, and nothing is written "
                                f"through one. Remove it and rerun (to keep a corpus on another disk, make "
                                f"the target folder itself a link)") from None
    return path


def _write(archive: str, root: str, member: _Member, read: Callable[[object], object]) -> None:
    """Write one checked member; an existing file or link at its place is replaced, never followed."""
    parent = _real_dir(archive, root, member.parts[:-1])
    if member.kind == "dir":
        _real_dir(archive, root, member.parts)
        return
    path = os.path.join(parent, member.parts[-1])
    if os.path.lexists(path) and not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)
    if member.kind == "symlink":
        os.symlink(member.link, path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out, read(member.source) as data:
        shutil.copyfileobj(data, out, CHUNK_BYTES)


def _damaged(archive: str, error: Exception) -> UserError:
    return UserError(f"cannot unpack {archive}: {error}; the archive is damaged or truncated: delete it "
                     f"and rerun")


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.isfile():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    return "hard link" if info.islnk() else "device or fifo"


def _tar_entries(tar: tarfile.TarFile, archive: str, select: Callable[[str], bool], bar: tqdm, raw) -> list:
    entries = []
    for count, info in enumerate(tar, 1):
        bar.update(raw.tell() - bar.n)
        if count > MAX_MEMBERS:
            raise UserError(f"unsafe archive {archive}: more than {MAX_MEMBERS} members; refused")
        if select(info.name):
            entries.append((info.name, _tar_kind(info), info.size if info.isfile() else 0, info.linkname, info))
    return entries


def _zip_entries(zf: zipfile.ZipFile, archive: str, select: Callable[[str], bool]) -> list:
    """Zip members; a member with symlink mode bits is written as a plain file (zipfile's own way)."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UserError(f"unsafe archive {archive}: more than {MAX_MEMBERS} members; refused")
    return [(i.filename, "dir" if i.is_dir() else "file", i.file_size, "", i) for i in infos if select(i.filename)]


def unpack(archive: str, target_dir: str, select: Callable[[str], bool] | None = None,
           progress: bool = True) -> int:
    """Extract a tar (gz/bz2/xz) or zip archive into ``target_dir``; return the number of members.

    ``select`` keeps only the members whose names it accepts. All members are read and checked
    first (see ``_check_all``); only then is anything written, member by member, never through a link.
    """
    os.makedirs(target_dir, exist_ok=True)
    root = os.path.realpath(target_dir)
    keep = select or (lambda _name: True)
    with tqdm(total=os.path.getsize(archive), unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"check {os.path.basename(archive)}", mininterval=1.0, leave=False,
              disable=not progress) as bar:
        member = ""
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    members = _check_all(archive, root, _zip_entries(zf, archive, keep))
                    for member in members:
                        _write(archive, root, member, zf.open)
                return len(members)
            with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
                members = _check_all(archive, root, _tar_entries(tar, archive, keep, bar, raw))
                bar.reset(total=len(members))
                bar.set_description(f"unpack {os.path.basename(archive)}")
                for member in members:
                    _write(archive, root, member, tar.extractfile)
                    bar.update(1)
            return len(members)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError,
                gzip.BadGzipFile) as e:
            raise _damaged(archive, e) from e
        except ValueError as e:  # e.g. a NUL byte in a PAX header that tarfile let through
            raise UserError(f"unsafe archive {archive}: {e}; refused. Delete the archive and download it "
                            f"from the official source") from e
        except OSError as e:
            if e.errno is None or not member:  # bad data (bz2 says so with a bare OSError) or reading failed
                raise _damaged(archive, e) from e
            where = os.path.join(root, *member.parts) if member else root
            raise UserError(f"cannot unpack {archive}: {where}: {e.strerror}; fix that (e.g. free some "
                            f"space) and rerun: the unpack starts over") from e


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
