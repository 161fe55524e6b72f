"""Files only their owner can read: evidence and the log name actors, accounts, flags and gate details,
so folders are 0700 and files 0600 whatever the umask (a mode given to mkdir or open is masked by the
umask; chmod is not). Also the plain words for why a path cannot be used, for one-line errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dir(path: Path) -> bool:
    """Create `path` 0700 (missing parents keep the usual mode: they are the user's). True if created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
        return False
    os.chmod(path, DIR_MODE)
    return True


def tighten(path: Path, mode: int) -> None:
    """chmod a folder or regular file of ours that others can read (left by an older version)."""
    try:
        if _ours_and_loose(os.stat(path), mode):
            os.chmod(path, mode)
    except OSError:
        pass  # not ours to change: it stays as it was


def open_file(path: Path, flags: int) -> int:
    """os.open creating the file 0600; an existing regular file of ours is brought to 0600 too."""
    fd = os.open(path, flags | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        if _ours_and_loose(os.fstat(fd), FILE_MODE):
            os.fchmod(fd, FILE_MODE)
    except OSError:
        pass
    return fd


def _ours_and_loose(st: os.stat_result, mode: int) -> bool:
    """A folder or regular file owned by us whose mode is not `mode`. Never a device or a FIFO (chmod on
    /dev/null as root would change it for everyone), never someone else's file."""
    kind_ok = stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)
    return kind_ok and st.st_uid == os.geteuid() and st.st_mode & 0o777 != mode


def write_file(path: Path, text: str) -> None:
    """Write `text` in place (a new file 0600); for a path the user names, which may be /dev/stdout."""
    with os.fdopen(open_file(path, os.O_WRONLY | os.O_TRUNC), "w", encoding="utf-8") as f:
        f.write(text)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a 0600 file; a crash mid-write leaves the old file (or none), never a truncated one."""
    tmp = path.with_name(path.name + ".tmp")
    write_file(tmp, text)
    os.replace(tmp, path)


def why_unusable(path: Path, err: OSError | None = None) -> str:
    """Why `path` cannot be a folder to write in, as the end of a sentence that starts with its name."""
    if path.exists() and not path.is_dir():
        return "is a file: pass a directory"
    blocker = _first_non_directory(path)
    if blocker is not None:
        return f"cannot be created: {blocker} is a file"
    return f"cannot be written to: {err.strerror if err is not None and err.strerror else 'permission denied'}"


def unwritable_file(path: Path) -> str | None:
    """Why a file named on the command line (--out-md FILE) could not be written, or None. Writes nothing."""
    if path.is_dir():
        return f"is a directory: pass a file name, e.g. {path / 'report.md'}"
    blocker = _first_non_directory(path.parent)
    if blocker is not None:
        return f"cannot be written: {blocker} is a file"
    if not path.parent.exists():
        return f"cannot be written: the folder {path.parent} does not exist"
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        return "cannot be written: permission denied"
    return None


def _first_non_directory(path: Path) -> Path | None:
    """The nearest existing ancestor-or-self of `path`, if it is not a directory."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None
