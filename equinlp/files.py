"""Writing result files so that an interrupt leaves the old file or the new one, never half of one.

Each write goes to a temporary name of its own (process id and a random part) beside the target and is
renamed over it, so two processes writing into one folder (``torchrun``, two runs on one ``--out``) never
share a temporary file; the last rename wins whole.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from equinlp.errors import EquinlpError


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_folder_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary folder beside ``path``, then put it in place of ``path``.

    An interrupt leaves the old folder (or none) and a ``.NAME.*.tmp`` folder that the next write ignores.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        write(tmp)
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


WHOLE_FILE = 256 * 2**20  # files up to this size are hashed whole
SAMPLED = 16 * 2**20  # of a larger file (model weights), the first and last this many bytes and its size


def digest(path: str | os.PathLike) -> str:
    """``sha256:…`` of a file's or a folder's content (a folder: every file's relative path and digest, hidden
    files, folders and lock files left out).

    Files up to 256 MiB are hashed whole; of a larger one (a model's weights), its size and its first and
    last 16 MiB, where any change of a checkpoint's values shows. Cached per (path, size, mtime).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and _content(p.relative_to(path))]
        lines = [f"{p.relative_to(path).as_posix()}\t{digest(p)}" for p in files]
        return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()
    stat = path.stat()
    return _file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _content(relative: Path) -> bool:
    """Whether a file in a folder is content: not hidden, not a lock file (``evaluate`` leaves ``*.lock`` there)."""
    return relative.suffix != ".lock" and not any(part.startswith(".") for part in relative.parts)


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256(str(size).encode() + b"\0")
    with open(path, "rb") as file:
        if size <= WHOLE_FILE:
            sha.update(file.read())
        else:
            sha.update(file.read(SAMPLED))
            file.seek(size - SAMPLED)
            sha.update(file.read(SAMPLED))
    return "sha256:" + sha.hexdigest()


def read_text_file(path: str | os.PathLike, what: str) -> str:
    """A text file's content as UTF-8 (a byte-order mark dropped); anything else is one error naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise EquinlpError(f"{what} {path}: {error.strerror}") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise EquinlpError(f"{what} {path} is UTF-16; save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise EquinlpError(f"{what} {path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    if "\x00" in text:
        raise EquinlpError(f"{what} {path} holds NUL characters (UTF-16 without a byte-order mark?); save it as UTF-8")
    return text
