"""Recording a checkpoint from inside a job of `glisk work`, in Python, with the standard library
only (a job need not install glisk to use it; copying this file will do):

    from glisk_cli.checkpoint import record, LeaseLost

    record({"prediction_id": prediction["id"]})   # durable on return; LeaseLost: stop now

It talks to the runner's checkpoint socket (`work/checkpoints.py`), whose path and the job's
lease the runner puts in the job's environment. Outside `glisk work`, use `glisk tokens
checkpoint --lease-id L TOKEN_ID... JSON` or `uow.tokens.checkpoint(...)`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

SOCKET_VARIABLE = "GLISK_CHECKPOINT_SOCKET"
LEASE_VARIABLE = "GLISK_LEASE_ID"


class CheckpointRefused(Exception):
    """The runner did not record the checkpoint; `code` says why (`invalid_input`, …)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LeaseLost(CheckpointRefused):
    """The job's lease is gone: nothing was recorded, and the side effect must not happen."""


def record(
    checkpoint: Mapping[str, Any], token_ids: Sequence[int] | None = None, timeout: float = 30
) -> list[int]:
    """Record `checkpoint` for the job's tokens (or those of `token_ids`); returns the token ids
    it landed on, once it is durable."""
    path, lease_id = os.environ.get(SOCKET_VARIABLE), os.environ.get(LEASE_VARIABLE)
    if not path or not lease_id:
        raise RuntimeError(f"not a job of glisk work: {SOCKET_VARIABLE} and {LEASE_VARIABLE} unset")
    request: dict[str, Any] = {"lease_id": lease_id, "checkpoint": dict(checkpoint)}
    if token_ids is not None:
        request["token_ids"] = list(token_ids)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(path)
        connection.sendall(json.dumps(request).encode() + b"\n")
        reply = read_line(connection, 1 << 20)
    answer = json.loads(reply or b"{}")
    if answer.get("ok") is True:
        return list(answer.get("token_ids", []))
    error = answer.get("error") or {"code": "internal", "message": "no answer from the runner"}
    refused = LeaseLost if error.get("code") == "lease_lost" else CheckpointRefused
    raise refused(str(error.get("code")), str(error.get("message")))


def read_line(connection: socket.socket, limit: int) -> bytes | None:
    """One line from `connection` (without its newline; what came before the connection closed
    if it had none), or None when it runs past `limit` bytes: the protocol's one message."""
    data = bytearray()
    while b"\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data).split(b"\n", 1)[0]
