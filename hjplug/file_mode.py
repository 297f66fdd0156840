"""The permission bits of files hjplug writes atomically.

A temporary file from `tempfile.mkstemp` is created 0600; renamed onto the target as it is, a
report, plot, recording or .onnx would be unreadable to everyone else, unlike a file written with
open(). `match_plain_write` gives the temporary file the mode open() would have given the target:
the target's current mode when it exists, else 0666 minus the umask. `writable_error` probes a
destination directory by creating (and deleting) a file there: os.access says yes to root even on
read-only file systems such as /sys.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

__all__ = ["match_plain_write", "plain_write_mode", "writable_error"]


def plain_write_mode(target: Path) -> int:
    """Mode bits open(target, "w") would leave: the existing file's, else 0o666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        pass
    mask = os.umask(0o022)  # read the umask (only way), then restore it at once
    os.umask(mask)
    return 0o666 & ~mask


def match_plain_write(tmp: str | os.PathLike, target: Path) -> None:
    """chmod the temporary file `tmp` to the mode a plain write of `target` would have."""
    os.chmod(tmp, plain_write_mode(target))


def writable_error(directory: Path, name: str = "") -> OSError | None:
    """None when a file can be created in `directory` (a temporary '.<name>.*.probe' file is
    created and deleted at once), else the OSError that creating it raised."""
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".probe")
    except OSError as err:
        return err
    os.close(fd)
    os.unlink(probe)
    return None
