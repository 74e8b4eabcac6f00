"""Checkpoints from the jobs of `glisk work`, without a process each: the runner listens on a Unix
socket of its own (in a private directory) and tells each job where, in its environment
(`GLISK_CHECKPOINT_SOCKET`, with `GLISK_LEASE_ID`). A job sends one JSON line —
`{"lease_id": "…", "checkpoint": {…}}`, optionally `"token_ids": […]` — and reads one back:
`{"ok": true}` once the checkpoint is durable, or `{"ok": false, "error": {"code", "message"}}`
(`lease_lost`: the job must not go on to its side effect; `invalid_input`: not a small JSON
object).
`glisk_cli.checkpoint.record` is the client, for Python jobs (README, "Checkpoints").

Each checkpoint is its own Unit of Work, on a connection of the runner's pool, written with the
stage's history (`History.checkpointed`): the generation job's external id, a reveal's pending
transaction. Requests are served one at a time, by one thread: a checkpoint is a millisecond,
and a job waits for it before its side effect anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from typing import Any

from glisk_cli.checkpoint import read_line
from glisk_cli.errors import DatabaseUnavailable, GliskError
from glisk_cli.logging import logger
from glisk_cli.pipeline import MAX_CHECKPOINT, Stage
from glisk_cli.uow import UnitOfWork
from glisk_cli.work.history import history_of

_REQUEST_TIMEOUT_S = 10.0  # a job that connects and says nothing does not hold the others up
_MAX_REQUEST = MAX_CHECKPOINT + 4096  # the checkpoint and the envelope around it


class CheckpointServer:
    """The runner's end of the socket: listens from creation until `close()`."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork], stage: Stage) -> None:
        self._uow, self._stage = uow_factory, stage
        self._directory = tempfile.mkdtemp(prefix="glisk-work-")  # mode 0700: the runner's own
        self.path = os.path.join(self._directory, "checkpoints")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)
        self._closed = False
        threading.Thread(target=self._serve, daemon=True, name="glisk-checkpoints").start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    def _serve(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            with connection:
                connection.settimeout(_REQUEST_TIMEOUT_S)
                with contextlib.suppress(OSError):
                    answer = self._answer(read_line(connection, _MAX_REQUEST))
                    connection.sendall(json.dumps(answer).encode() + b"\n")

    def _answer(self, line: bytes | None) -> dict[str, Any]:
        if line is None:
            return _refused("invalid_input", f"a checkpoint is at most {MAX_CHECKPOINT // 1024} kB")
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is one JSON object on one line")
            lease_id = uuid.UUID(str(request.get("lease_id")))
            token_ids = request.get("token_ids")
            if token_ids is not None and not (
                isinstance(token_ids, list) and all(type(n) is int for n in token_ids)
            ):
                raise ValueError("token_ids is a list of token ids")
            checkpoint = request.get("checkpoint")
            if not isinstance(checkpoint, dict):
                raise ValueError("the checkpoint is a JSON object")
        except ValueError as error:
            return _refused("invalid_input", str(error))
        try:
            with self._uow() as uow:
                tokens = uow.tokens.checkpoint_lease(lease_id, checkpoint, token_ids)
                history_of(self._stage).checkpointed(uow, tokens, checkpoint)
        except DatabaseUnavailable as error:
            return _refused("database_unavailable", str(error))
        except GliskError as error:
            return _refused(error.code, str(error))
        except Exception as error:  # a bug must not take the runner down, nor pass as durable
            logger.warning("work.checkpoint_failed", error=repr(error))
            return _refused("internal", type(error).__name__)
        return {"ok": True, "token_ids": [token.token_id for token in tokens]}


def _refused(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}
