"""``RunStore``: one output folder, where every finished run is one JSON envelope keyed by its settings.

Layout of ``OUT``:

- ``runs/{id}.json``: a finished cell's envelope: ``task, stage, cell, config`` (the settings it was
  computed with), ``metrics``, ``seconds``, and where it came from: ``version``, ``commit``, ``date``;
- ``work/{id}/``: a cell's working files (its settings in ``settings.json``, samples, artifacts other
  cells read, and ``checkpoint/`` while it runs, removed when the envelope is written).

While a run works in ``OUT`` it holds ``OUT/.lock`` (an ``flock``; the file names the run's host and process,
and the processes of one ``torchrun`` share it): a second run on the same folder is refused instead of
duplicating the work. A lock left by a run that no longer exists (killed) is free, and taken over.

A rerun keeps a cell only if it was made with exactly the settings asked for now. If a finished or
started cell was made with other settings, the store refuses with a message naming them (``--overwrite``
removes those cells and recomputes them); new cells (another seed, method or axis) are simply added.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from equinlp.errors import EquinlpError
from equinlp.files import write_text_atomic

log = logging.getLogger(__name__)
SCHEMA = 1
RUNS, WORK, SETTINGS, LOCK = "runs", "work", "settings.json", ".lock"
MAX_ID = 200  # an id is a file name (with ".json") and a folder name: file systems allow 255 bytes


class SettingsChanged(EquinlpError):
    """An output folder holds cells made with other settings than the ones asked for."""


@cache
def commit() -> str | None:
    """The git commit of the equinlp checkout (``+dirty`` with uncommitted changes); None when installed from a wheel."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        git = ["git", "-C", str(root)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run([*git, "status", "--porcelain", "-uno"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else None


def provenance() -> dict[str, Any]:
    """``{"version", "commit", "date"}`` for a result written now."""
    from equinlp import __version__

    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {"version": __version__, "commit": commit(), "date": date}


def read_json(path: Path, what: str = "file") -> Any:
    """A JSON file's content; a damaged one is an ``EquinlpError`` naming it and the fix."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EquinlpError(f"{what} {path} is damaged ({error}); delete it to recompute it") from error


def _differences(stored: dict, asked: dict) -> list[str]:
    """``name=old there, new now`` for every setting that differs."""

    def show(values: dict, name: str) -> str:
        return repr(values[name]) if name in values else "(unset)"

    names = sorted(set(stored) | set(asked))
    return [f"{n}={show(stored, n)} there, {show(asked, n)} now" for n in names if stored.get(n, ...) != asked.get(n, ...)]


def _owner() -> dict[str, Any]:
    """Who holds a lock: this host and the launching process (torchrun's agent for its workers)."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return {"host": socket.gethostname(), "pid": os.getppid() if launched else os.getpid()}


def _escape(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]", lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), value)


def _read_holder(file) -> dict | None:
    file.seek(0)
    try:
        holder = json.loads(file.read() or "null")
    except json.JSONDecodeError:
        return None
    return holder if isinstance(holder, dict) else None


def _try_lock(path: Path):
    """``(open file, None)`` holding an exclusive ``flock`` on ``path``, or ``(None, holder)`` when another process
    holds it (``holder``: what the file says, None while unwritten). A file removed or replaced between the open
    and the lock is opened again, so the lock held is always on the file at ``path``."""
    while True:
        file = open(path, "a+")  # noqa: SIM115 -- held open for the whole run
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(file)
            file.close()
            return None, holder
        try:
            same = os.fstat(file.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return file, None
        file.close()  # its holder removed it as we opened it: take the one there now


class RunStore:
    """The output folder of one task's runs. ``cell`` is a dict of a run's coordinates (e.g. method, seed)."""

    def __init__(self, out: str | Path, task: str, overwrite: bool = False) -> None:
        self.out, self.task, self.overwrite = Path(out), task, overwrite
        if self.out.exists() and not self.out.is_dir():
            raise EquinlpError(f"--out {self.out} is a file; give a folder (it is created if missing)")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``OUT/.lock`` while running; refuse if another live run holds it, take over a dead run's.

        The lock is an ``flock`` on the file, so the kernel releases it when its process dies, however it dies:
        any number of processes racing for a stale lock leave exactly one holder. The file's text names the
        holder for the refusal message; processes of one ``torchrun`` launch share the holder's lock.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        path, me = self.out / LOCK, _owner()
        file = None
        for _ in range(200):
            file, holder = _try_lock(path)
            if file is not None:
                break
            if holder is None:
                time.sleep(0.05)  # locked, but its holder has not written its name yet
                continue
            if {k: holder.get(k) for k in me} == me:
                break  # a sibling process of this launch holds it
            raise EquinlpError(
                f"{self.out} is in use by another run (process {holder.get('pid')} on {holder.get('host')} since "
                f"{holder.get('since')}); wait for it or use another --out"
            )
        else:
            raise EquinlpError(f"{path} is locked by a process that does not say who it is; wait for it or use another --out")
        if file is not None:
            stale = _read_holder(file)
            if stale and {k: stale.get(k) for k in me} != me:
                log.warning("%s: taking over the lock of process %s, which no longer runs", self.out, stale.get("pid"))
            file.seek(0)
            file.truncate()
            file.write(json.dumps({**me, "since": provenance()["date"]}))
            file.flush()
        try:
            yield
        finally:
            if file is not None:  # removed while still held, so no process can take the file being removed
                path.unlink(missing_ok=True)
                file.close()

    def cell_id(self, stage: str, cell: dict[str, Any]) -> str:
        """``task[_stage]_key=value_...``, e.g. ``scan_seed=0_method=equitune``.

        One id per cell, never shared: any character of a value other than letters, digits and ``.+_-`` is
        written as ``%XX`` (its UTF-8 bytes), ``=`` and ``%`` included, so ``d1/g.json`` is ``d1%2Fg.json`` and
        ``d1-g.json`` stays itself; and since no value holds ``=``, ``_key=`` marks where each value starts.
        An id longer than ``MAX_ID`` is cut and ends in a hash of the whole.
        """
        parts = [self.task, *([] if stage == "run" else [stage]), *(f"{k}={_escape(str(v))}" for k, v in cell.items())]
        whole = "_".join(parts)
        if len(whole) <= MAX_ID:
            return whole
        return f"{whole[: MAX_ID - 18]}~{hashlib.sha256(whole.encode()).hexdigest()[:16]}"  # a file name's limit

    def envelope_path(self, stage: str, cell: dict) -> Path:
        return self.out / RUNS / f"{self.cell_id(stage, cell)}.json"

    def work_dir(self, stage: str, cell: dict) -> Path:
        """The cell's working folder (samples, artifacts such as pre-trained weights, its checkpoint)."""
        return self.out / WORK / self.cell_id(stage, cell)

    def checkpoint_dir(self, stage: str, cell: dict) -> Path:
        """Where a running cell keeps its checkpoint (removed when the cell finishes)."""
        return self.work_dir(stage, cell) / "checkpoint"

    def finished(self, stage: str, cell: dict, settings: dict, remove: bool = True, defaults: dict | None = None) -> dict | None:
        """The cell's envelope if it finished with these ``settings``; None if it has not finished.

        Raises :class:`SettingsChanged` when the cell (finished or started) was made with other settings,
        unless the store overwrites: then that cell's files are removed (if ``remove``; another process may
        leave it to the main one) and it counts as unfinished. A setting the stored cell does not record (it
        was added to equinlp later) counts as its value in ``defaults``, so older runs stay valid.
        """
        path, work = self.envelope_path(stage, cell), self.work_dir(stage, cell)
        stored = None
        if path.exists():
            stored = read_json(path, "run result")
            stored = stored.get("config") if isinstance(stored, dict) else None
            if stored is None:
                raise EquinlpError(f"{path} is not an equinlp run envelope (an older version's?); move it or use another --out")
        elif (work / SETTINGS).exists():
            stored = read_json(work / SETTINGS, "run settings")
        if stored is not None:  # compared on today's settings of this cell: added ones at their default
            known = {**(defaults or {}), **stored}
            stored = {k: known[k] for k in settings if k in known}
        if stored is None or stored == settings:
            return read_json(path, "run result") if path.exists() else None
        if not self.overwrite:
            changed = "; ".join(_differences(stored, settings))
            raise SettingsChanged(
                f"{self.out} holds {self.cell_id(stage, cell)} made with other settings ({changed}); "
                "use another --out, or add --overwrite to recompute it"
            )
        if remove:
            path.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)
        return None

    def begin(self, stage: str, cell: dict, settings: dict) -> Path:
        """Record the settings a cell is started with; returns its working folder."""
        work = self.work_dir(stage, cell)
        if not (work / SETTINGS).exists():
            write_text_atomic(work / SETTINGS, json.dumps(settings, indent=1, sort_keys=True) + "\n")
        return work

    def finish(self, stage: str, cell: dict, settings: dict, metrics: dict, seconds: float, **extra: Any) -> dict:
        """Write the cell's envelope (atomically) and remove its checkpoint; returns the envelope.

        ``extra`` adds keys to the envelope (e.g. ``migrated_from`` for runs converted from an older layout).
        """
        envelope = {
            "schema": SCHEMA,
            "task": self.task,
            "stage": stage,
            "cell": cell,
            "metrics": metrics,
            "config": settings,
            "seconds": round(seconds, 2),
            **provenance(),
            **extra,
        }
        write_text_atomic(self.envelope_path(stage, cell), json.dumps(envelope, indent=1) + "\n")
        shutil.rmtree(self.checkpoint_dir(stage, cell), ignore_errors=True)
        return envelope
