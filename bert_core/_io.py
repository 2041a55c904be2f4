"""Atomic writes: a reader never sees a half-written file or directory."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_directory", "recover_directory"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary sibling of ``path``, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


#: Temporaries this process is using now; a sibling named with our own PID but not in here is stale.
_ACTIVE: set[Path] = set()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _alive(pid: int, path: Path) -> bool:
    if pid == os.getpid():
        return path in _ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def recover_directory(path: str | os.PathLike) -> None:
    """Undo what a killed writer of ``path`` left behind (:func:`atomic_directory`'s siblings whose PID is dead).

    A missing ``path`` is restored from the newest moved-aside copy (``.NAME.old-PID``); then
    every stale ``.NAME.tmp-PID-*`` and ``.NAME.old-PID`` is removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(tmp|old)-(\d+)(-.*)?")
    stale = [(m[1], s) for s in path.parent.iterdir() if (m := pattern.fullmatch(s.name)) and not _alive(int(m[2]), s)]
    olds = sorted((s for kind, s in stale if kind == "old"), key=lambda s: s.lstat().st_mtime)
    if olds and not (path.exists() or path.is_symlink()):
        os.replace(olds[-1], path)
    for _, sibling in stale:
        _remove(sibling)


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # an old kernel or a filesystem without it
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _swap_in(new: Path, path: Path) -> None:
    """Put directory ``new`` at ``path``; an existing ``path`` ends up at ``new`` (to delete) or is restored on failure."""
    if not (path.exists() or path.is_symlink()):
        os.replace(new, path)
        return
    if path.is_dir() and not path.is_symlink() and _exchange(new, path):
        return  # one atomic step: path is never missing
    # Two renames: between them path is missing, and a killed process leaves the old output at
    # .NAME.old-PID, which recover_directory puts back on the next run.
    backup = path.with_name(f".{path.name}.old-{os.getpid()}")
    _ACTIVE.add(backup)
    try:
        os.replace(path, backup)
        try:
            os.replace(new, path)
        except BaseException:
            os.replace(backup, path)
            raise
        _remove(backup)
    finally:
        _ACTIVE.discard(backup)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of directory ``path`` to fill; on success it replaces ``path``.

    The old ``path`` stays whole until the new one is complete: on any exception (or a kill)
    while filling, ``path`` is as it was. The swap is one atomic exchange where the system has
    it (Linux); elsewhere two renames, the old output restored if the second fails. What a
    killed process left (:func:`recover_directory`) is cleaned up first. The old output is
    deleted last.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    _ACTIVE.add(tmp)
    try:
        yield tmp
        _swap_in(tmp, path)
    finally:
        _remove(tmp)  # the unfinished new output, or the old one after an exchange
        _ACTIVE.discard(tmp)
