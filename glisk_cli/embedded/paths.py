"""Where an embedded server's data and socket live, how glisk makes the directories it needs,
and what happens when they are someone else's."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from glisk_cli.embedded.root import ROOT_DEFAULT_DATA_DIR
from glisk_cli.errors import ConfigError

T = TypeVar("T")
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


def default_data_dir(*, is_root: bool | None = None) -> Path:
    """Where embedded data lives unless GLISK_DATA_DIR says otherwise."""
    if is_root if is_root is not None else os.geteuid() == 0:
        return ROOT_DEFAULT_DATA_DIR
    import platformdirs

    return Path(platformdirs.user_data_dir("glisk", appauthor=False))


def make_private(directory: Path) -> None:
    """Create `directory` and whatever of its parents is missing, each readable by its owner
    only (as the XDG spec asks of a missing ~/.local/share); existing ones are left as they are.
    `mkdir(parents=True)` would give the parents the umask's mode, usually 0755."""
    missing = [path for path in (directory, *directory.parents) if not path.exists()]
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass  # another process made it a moment ago
        except PermissionError:
            raise ConfigError(
                f"cannot create the embedded server's data directory {directory}: "
                f"{path.parent} is not writable by this user",
                hint="set GLISK_DATA_DIR to a directory you can write",
            ) from None


def socket_dir_for(pgdata: Path, port: int) -> Path:
    """The cluster directory itself when the socket path fits, else a short private one (per
    user, so two users' servers never meet)."""
    if len(str(pgdata / f".s.PGSQL.{port}").encode()) <= _MAX_SOCKET_PATH:
        return pgdata
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"glisk-{os.geteuid()}-{digest}"


def not_someone_elses(method: Callable[..., T]) -> Callable[..., T]:
    """A data directory this user may not read (another user's server, or a path closed to
    it) is a configuration problem (exit 4) with one clear line, not a traceback."""

    @functools.wraps(method)
    def checked(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except PermissionError as error:
            raise ConfigError(
                f"the embedded server's data directory {self.data_dir} is not this user's: "
                f"{error.filename or self.data_dir}: permission denied",
                hint="each user runs their own embedded server; set GLISK_DATA_DIR to yours",
            ) from None

    return checked
