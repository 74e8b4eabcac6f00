"""Local stand-ins for the services the examples talk to, each an HTTP server on a free loopback
port in a thread of the test process, counting what it was asked to do:

- `ImageService`: paid predictions (`POST /predictions`, idempotent by `Idempotency-Key`;
  `GET /predictions/ID`, done `seconds` after it was created); `created[token_id]` counts the
  predictions made, what would be paid for;
- `PinService`: `POST /pins?token_id=&kind=` answers the content's CID; `pins[(token_id,
  kind)]` counts the pins;
- `Chain`: an eth-tester chain (py-evm, every transaction mined at once) behind JSON-RPC, for
  web3 in other processes; `reveals()` reads back every transaction it mined.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Server:
    """A threading HTTP server whose requests go to `handle(method, path, headers, body)`."""

    def __init__(self) -> None:
        owner = self
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer = owner.handle(method, self.path, self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        raise NotImplementedError

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


class ImageService(_Server):
    def __init__(self, seconds: float = 0.2) -> None:
        self.seconds = seconds
        self.created: Counter[int] = Counter()
        self._by_key: dict[str, str] = {}
        self._predictions: dict[str, tuple[int, float]] = {}
        super().__init__()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        with self.lock:
            if method == "POST" and path == "/predictions":
                key = headers.get("Idempotency-Key")
                if key is not None and key in self._by_key:
                    return 200, {"id": self._by_key[key]}
                token_id = json.loads(body)["token_id"]
                prediction = str(uuid.uuid4())
                self._predictions[prediction] = (token_id, time.monotonic())
                self.created[token_id] += 1
                if key is not None:
                    self._by_key[key] = prediction
                return 201, {"id": prediction}
            if method == "GET" and path.startswith("/predictions/"):
                prediction = path.rsplit("/", 1)[1]
                token_id, created = self._predictions[prediction]
                if time.monotonic() - created < self.seconds:
                    return 200, {"id": prediction, "status": "processing"}
                output = f"images/{token_id}-{prediction}.png"
                return 200, {"id": prediction, "status": "succeeded", "output": output}
        return 404, {"error": "not found"}


class PinService(_Server):
    def __init__(self) -> None:
        self.pins: Counter[tuple[int, str]] = Counter()
        super().__init__()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        parts = urlsplit(path)
        if method != "POST" or parts.path != "/pins":
            return 404, {"error": "not found"}
        query = parse_qs(parts.query)
        with self.lock:
            self.pins[(int(query["token_id"][0]), query["kind"][0])] += 1
        return 200, {"cid": "bafy" + hashlib.sha256(body).hexdigest()[:52]}


class Chain(_Server):
    """One eth-tester chain; its first funded account's key signs the reveals."""

    KEY = "0x" + "00" * 31 + "01"  # eth-tester funds the accounts of keys 1, 2, …

    def __init__(self) -> None:
        from web3 import EthereumTesterProvider, Web3

        self.provider = EthereumTesterProvider()
        self.w3 = Web3(self.provider)
        super().__init__()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        # Through web3's own request path, whose formatters turn eth-tester's answers into
        # JSON-RPC's (camelCase keys), so that the web3 of another process reads them.
        request = json.loads(body)
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": request.get("id")}
        try:
            with self.lock:
                result = self.w3.manager.request_blocking(
                    request["method"], request.get("params", [])
                )
        except Exception as error:  # the node's refusal, as a node would answer it
            return 200, {**answer, "error": {"code": -32000, "message": str(error)}}
        return 200, {**answer, "result": json.loads(self.w3.to_json(result))}

    def reveals(self) -> list[dict[str, Any]]:
        """Every transaction mined: its hash, nonce, and the token ids it reveals."""
        mined = []
        with self.lock:
            for number in range(self.w3.eth.block_number + 1):
                block = self.w3.eth.get_block(number, full_transactions=True)
                for tx in block.get("transactions", []):
                    found: Any = tx  # full transactions: attribute dicts
                    data = bytes(found.get("input") or found.get("data") or b"").decode(
                        errors="replace"
                    )
                    ids = [int(n) for n in data.removeprefix("reveal:").split(",") if n]
                    mined.append(
                        {"hash": found["hash"].hex(), "nonce": found["nonce"], "token_ids": ids}
                    )
        return mined


@contextmanager
def standins(image_seconds: float = 0.2) -> Iterator[tuple[ImageService, PinService, Chain]]:
    servers = (ImageService(image_seconds), PinService(), Chain())
    try:
        yield servers
    finally:
        for server in servers:
            server.close()
