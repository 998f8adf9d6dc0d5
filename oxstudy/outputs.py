"""Writing the files a user names on the command line (``--json PATH``, ``report -o PATH``).

Every error names the path: a full disk reports ENOSPC from ``write``/``close``, where Python's
error has no file name, and a parent that is a file would otherwise read "File exists".
"""

from __future__ import annotations

import errno
from pathlib import Path


def is_special(path: Path) -> bool:
    """An existing path that is neither a regular file nor a directory (``/dev/stdout``, a FIFO)."""
    return path.exists() and not path.is_file() and not path.is_dir()


def write_output(path: str | Path, text: str) -> Path:
    """Write ``text`` to the user-named ``path`` and return it.

    A regular file (or a new path) is written atomically (temp file + rename, so a failed write
    leaves any earlier file whole); a special file the user named (a device, a FIFO) is written
    in place, never replaced by a rename. ``OSError`` always names the path.
    """
    from oxstudy.store import atomic_write_text

    target = Path(path)
    for parent in (target.parent, *target.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise OSError(errno.ENOTDIR, "is a file, not a directory", str(parent))
            break
    if not is_special(target):
        atomic_write_text(target, text)
        return target
    try:
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(target)) from exc
    return target
