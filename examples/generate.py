"""A generation worker for `glisk work generation -- python examples/generate.py`: asks an image
service over HTTP for the token's image, paying once per token however often it is retried.

    IMAGE_SERVICE_URL=https://images.example.com glisk work generation --concurrency 4 -- \\
        python examples/generate.py

The service's protocol is the usual one for paid predictions: `POST /predictions` with an
`Idempotency-Key` creates one (the same key again returns the same prediction), `GET
/predictions/ID` tells whether it is done and where the image is. Before paying, the worker
checkpoints the key it will send; once the service answered, the prediction's id
(`external_job_id`, which lands on the attempt's history row). A retry — the worker killed at
any moment — finds them in the token's `checkpoint` and polls the same prediction instead of
asking for a new one. `--no-checkpoints` leaves all that out, to show what it prevents.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
import uuid
from typing import Any

from glisk_cli.checkpoint import record

SERVICE = os.environ.get("IMAGE_SERVICE_URL", "http://127.0.0.1:8001")
POLL_S = 0.05


def call(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(SERVICE + path, data, headers or {}, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def main(checkpoints: bool) -> None:
    token = json.load(sys.stdin)
    saved = (token.get("checkpoint") or {}) if checkpoints else {}
    prediction_id = saved.get("external_job_id")
    if prediction_id is None:
        key = saved.get("idempotency_key") or str(uuid.uuid4())
        if checkpoints and "idempotency_key" not in saved:
            record({"idempotency_key": key})  # before paying: a retry sends the same key
        headers = {"Idempotency-Key": key} if checkpoints else {}
        body = {"token_id": token["token_id"], "prompt": f"token {token['token_id']}"}
        prediction_id = call("POST", "/predictions", body, headers)["id"]
        if checkpoints:
            record({"idempotency_key": key, "external_job_id": prediction_id})
    while (prediction := call("GET", f"/predictions/{prediction_id}"))["status"] != "succeeded":
        time.sleep(POLL_S)
    answer = {"image_path": prediction["output"], "external_job_id": prediction_id}
    json.dump({**answer, "service": "image-service"}, sys.stdout)


if __name__ == "__main__":
    main(checkpoints="--no-checkpoints" not in sys.argv[1:])
