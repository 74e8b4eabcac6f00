"""A throwaway embedded PostgreSQL for benchmarks, so they never touch anyone's data."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from glisk_cli.embedded import EmbeddedServer


@contextmanager
def scratch_server() -> Iterator[EmbeddedServer]:
    """Start a non-durable embedded server in a temporary directory; remove it afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="glisk-bench-"))
    data_dir.chmod(0o755)  # as root the server runs as another user, who must enter it
    server = EmbeddedServer(data_dir, durable=False)
    try:
        server.ensure_running()
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
