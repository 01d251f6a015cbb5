"""One run per run folder: an exclusive lock on ``OUT_DIR`` held for the run's life.

:class:`RunLock` takes an advisory ``flock`` on ``OUT_DIR/.stc-run.lock`` and writes the
holder (pid, host, start time, command) into it. A second run into the same folder finds
the lock taken and is refused with a message naming the holder. The kernel drops a
``flock`` when its process dies, however it dies (even SIGKILL), so a lock file left behind
by a dead run is taken over, and reported (:attr:`RunLock.stale`).

Where ``flock`` is not supported (some network file systems), the recorded pid decides: a
lock recorded on this host by a pid that no longer exists is stale and taken over; a live
pid, or another host (whose pids cannot be checked from here), refuses the run.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: only the recorded pid decides
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunDirLockedError", "RunLock"]

LOCK_NAME = ".stc-run.lock"


class RunDirLockedError(RuntimeError):
    """Another live run holds the folder's lock; ``holder`` is what it recorded."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _command_line() -> str:
    """This process's command line, short: "stc train --epochs 3", "stc_ext train ..." for
    ``python -m stc_ext``."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = program.parent.name if program.name == "__main__.py" else program.name
    return shlex.join([name, *sys.argv[1:]])


def describe_holder(holder: dict[str, Any]) -> str:
    """ "pid 123 on host h since 2026-01-01 10:00:00 (stc train ...)" from a lock record."""
    started = holder.get("started")
    when = (
        time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started))
        if isinstance(started, (int, float))
        else ""
    )
    command = f" ({holder['command']})" if holder.get("command") else ""
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}{when}{command}"


class RunLock:
    """The exclusive lock of one run folder (see the module docstring).

    ``acquire()`` takes it or raises :class:`RunDirLockedError`; ``release()`` (idempotent)
    gives it back and removes the lock file. After ``acquire()``, :attr:`stale` is the
    record of a dead run whose lock was taken over (None if there was none).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (the folder must exist).

        Raises:
            RunDirLockedError: another live run holds it.
        """
        if self._fd is not None:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._flock(fd)
                if locked is False:
                    holder = self._read(fd)
                    raise RunDirLockedError(self._refusal(holder, "holds it"), holder)
                # The holder before us may have removed the file between our open and our
                # lock: then the lock is on an orphan inode, and we try again.
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                previous = self._read(fd)
                if locked is None:  # no flock here: the recorded pid decides
                    self._check_without_flock(previous)
                if previous.get("pid") is not None:
                    self.stale = previous
                self._write(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return self

    def release(self) -> None:
        """Give the lock back and remove the lock file (nothing if not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # ------------------------------------------------------------------ helpers
    def _flock(self, fd: int) -> bool | None:
        """True: locked; False: another holds it; None: flock is not supported here."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            return None  # ENOLCK, EINVAL, ...: the file system does not lock
        return True

    def _check_without_flock(self, previous: dict[str, Any]) -> None:
        pid, host = previous.get("pid"), previous.get("host")
        if pid is None or pid == os.getpid():
            return
        if host != socket.gethostname():
            raise RunDirLockedError(
                self._refusal(previous, "may hold it (its host cannot be checked from here)")
                + f"; if no run uses {self.folder}, delete {self.path}",
                previous,
            )
        if _pid_alive(int(pid)):
            raise RunDirLockedError(self._refusal(previous, "holds it"), previous)

    def _refusal(self, holder: dict[str, Any], verb: str) -> str:
        return (
            f"{self.folder} is in use by another run: {describe_holder(holder)} {verb}. "
            "Wait for it to finish, or give this run another out_dir"
        )

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        os.lseek(fd, 0, os.SEEK_SET)
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        try:
            record = json.loads(data.decode("utf-8")) if data.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return record if isinstance(record, dict) else {}

    @staticmethod
    def _write(fd: int) -> None:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "command": _command_line(),
        }
        data = (json.dumps(record) + "\n").encode("utf-8")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)
        os.fsync(fd)
