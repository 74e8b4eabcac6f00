"""The README's screenshots of `glisk serve --dashboard`: the pipeline page and a token's page,
at desktop width (light) and phone width (dark), written to docs/.

    uv run python bench/dashboard_screenshots.py

A throwaway embedded PostgreSQL gets a pipeline that really ran: tokens seeded with `glisk dev
seed`, then `glisk work` runners for the three stages (a stand-in command per stage that fails
some first attempts) for a few seconds, so the history tables hold real attempts; one runner
stays up while the pictures are taken, the reveal stage is paused and generation is limited.
Needs Debian's chromium (apt-get install -y chromium), as the browser tests do.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import scratch_database

GLISK = Path(sys.executable).with_name("glisk")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parent.parent / "docs"
TOKEN = 26  # failed its first generation attempt (26 % 13 == 0), then went on

# A stage's stand-in worker: the token on stdin, its result fields on stdout; every 13th token's
# first attempt fails, as a flaky service would.
WORKER = """
import json, sys, time
token = json.load(sys.stdin)
time.sleep(0.15)
if token["token_id"] % 13 == 0 and token["attempts"] == 1:
    sys.stderr.write("image service: 504 Gateway Timeout after 30s\\n")
    sys.exit(3)
print(json.dumps({RESULT}))
"""
RESULTS = {
    "generation": '{"image_path": f"images/{token[\'token_id\']}.png"}',
    "upload": '{"image_cid": "bafy" + "a" * 55, "metadata_cid": "bafy" + "b" * 55}',
    "reveal": '{"tx_hash": "0x" + format(token["token_id"], "064x")}',
}


def main() -> None:
    with scratch_database(None, "glisk_screenshots") as url, tempfile.TemporaryDirectory() as tmp:
        env = {key: value for key, value in os.environ.items() if not key.startswith("GLISK_")}
        env |= {
            "DATABASE_URL": url,
            "APP_ENV": "development",
            "LOG_LEVEL": "WARNING",
            "GLISK_RETRY_BASE": "1s",
        }

        def glisk(*argv: str) -> None:
            subprocess.run([str(GLISK), *argv], env=env, check=True, capture_output=True)

        glisk("db", "upgrade")
        glisk("dev", "seed", "--authors", "12", "--tokens", "4000", "--yes")
        runners = [_runner(env, stage, f"{stage}-1", 4) for stage in RESULTS]
        time.sleep(12)
        for runner in runners[1:]:
            runner.send_signal(signal.SIGTERM)
        glisk("stage", "pause", "reveal", "--reason", "gas above 40 gwei")
        glisk("stage", "limit", "generation", "--concurrency", "6", "--rate", "20/s")
        runners.append(_runner(env, "generation", "gpu-2", 2))
        time.sleep(4)
        serve = subprocess.Popen(
            [str(GLISK), "serve", "--dashboard", "--port", "0"],
            env=env,
            stderr=open(Path(tmp) / "serve.log", "w"),  # noqa: SIM115 — closed with the process
        )
        try:
            base = _listening(Path(tmp) / "serve.log")
            _pictures(base)
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(10)
            for runner in runners:
                runner.send_signal(signal.SIGTERM)
            for runner in runners:
                runner.wait(40)


def _runner(env: dict[str, str], stage: str, worker: str, concurrency: int) -> subprocess.Popen:
    program = WORKER.replace("{RESULT}", RESULTS[stage])
    argv = [str(GLISK), "work", stage, "--worker", worker, "--concurrency", str(concurrency)]
    argv += ["--", sys.executable, "-c", program]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _listening(log: Path) -> str:
    deadline = time.monotonic() + 60
    while not (found := re.search(r"listening on (http://\S+:\d+)", log.read_text())):
        if time.monotonic() > deadline:
            raise SystemExit(f"glisk serve did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return found[1]


def _pictures(base: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM)
        for width, height, scheme, name in (
            (1280, 860, "light", "desktop"),
            (390, 844, "dark", "phone"),
        ):
            page = browser.new_page(
                viewport={"width": width, "height": height},
                color_scheme=scheme,  # type: ignore[arg-type]
                device_scale_factor=1,
            )
            for path, shot in (("/", "pipeline"), (f"/tokens/{TOKEN}", "token")):
                page.goto(base + path)
                target = DOCS / f"dashboard-{shot}-{name}.png"
                page.screenshot(path=str(target), full_page=name == "desktop" or shot == "token")
                print(target)
        browser.close()


if __name__ == "__main__":
    main()
