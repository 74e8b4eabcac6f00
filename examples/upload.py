"""An upload worker for `glisk work upload -- python examples/upload.py`: pins the token's image
and its metadata to an IPFS pinning service over HTTP, each once.

    PIN_SERVICE_URL=https://pins.example.com glisk work upload --concurrency 8 -- \\
        python examples/upload.py

`POST /pins` with the content answers its CID. The worker checkpoints each CID as soon as it has
it, so a retry pins only what is still missing. `--no-checkpoints` pins everything again.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from typing import Any

from glisk_cli.checkpoint import record

SERVICE = os.environ.get("PIN_SERVICE_URL", "http://127.0.0.1:8002")


def pin(token_id: int, kind: str, content: bytes) -> str:
    request = urllib.request.Request(
        f"{SERVICE}/pins?token_id={token_id}&kind={kind}", content, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["cid"]


def main(checkpoints: bool) -> None:
    token = json.load(sys.stdin)
    pinned: dict[str, Any] = dict(token.get("checkpoint") or {}) if checkpoints else {}
    if "image_cid" not in pinned:
        image = f"image of token {token['token_id']} at {token['image_path']}".encode()
        pinned["image_cid"] = pin(token["token_id"], "image", image)
        if checkpoints:
            record(pinned)
    if "metadata_cid" not in pinned:
        metadata = {"name": f"GLISK #{token['token_id']}", "image": f"ipfs://{pinned['image_cid']}"}
        pinned["metadata_cid"] = pin(token["token_id"], "metadata", json.dumps(metadata).encode())
        if checkpoints:
            record(pinned)
    json.dump(
        {"image_cid": pinned["image_cid"], "metadata_cid": pinned["metadata_cid"]}, sys.stdout
    )


if __name__ == "__main__":
    main(checkpoints="--no-checkpoints" not in sys.argv[1:])
