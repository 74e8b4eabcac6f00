"""`glisk serve` as a real process on a real database: the contract of every path, HEAD, 405,
404, CORS, Prometheus text, keep-alive, shared checks, hundreds of slow clients, an outage it
follows without a restart, and SIGTERM.

Starting a server process costs seconds here, so one process serves the whole module. It reaches
PostgreSQL through a proxy the outage test takes down and brings back. The tests run in file
order: the outage test restores the database, and the SIGTERM test, last, stops the server.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from tests.conftest import PostgresServer, seed_tokens
from tests.health.conftest import PostgresProxy, ServeProcess, start_serve

ALLOWED_ORIGIN = "http://dashboard.example"
PATHS = ["/health", "/readyz", "/livez", "/metrics"]
CANARY_PASSWORD = "canary-pw-5e1f"
TOKENS = [("detected", 3, 1), ("ready", 2, 10), ("failed", 1, 20)]  # status, count, first id
UNAVAILABLE = {
    "status": "unhealthy",
    "error": {"code": "database_unavailable", "message": "database is unavailable"},
}


@pytest.fixture(scope="module")
def proxy(pg_server: PostgresServer) -> Iterator[PostgresProxy]:
    proxy = PostgresProxy(pg_server.admin_url)
    proxy.up()
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def database_url(
    pg_server: PostgresServer, proxy: PostgresProxy, migrated_template: str
) -> Iterator[str]:
    """A migrated database with tokens in several states, through the proxy, with a password
    that must never be shown.

    The embedded test server trusts local connections and ignores the password, so a canary
    stands in; any other server gets its real password, which is as secret.
    """
    from glisk_cli.db import setup_db_session

    database = pg_server.create_database(template=migrated_template)
    factory = setup_db_session(pg_server.url_for(database), pool_size=1)
    for status, count, first_id in TOKENS:
        seed_tokens(factory, count, status=status, first_id=first_id)
    factory.kw["bind"].dispose()
    url = make_url(proxy.url_for(database))
    if url.password is None and str(make_url(pg_server.admin_url).query.get("host", "")):
        url = url.set(password=CANARY_PASSWORD)
    yield url.render_as_string(hide_password=False)
    pg_server.drop_database(database)


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    env = {"DATABASE_URL": database_url, "CORS_ORIGINS": ALLOWED_ORIGIN}
    serve = start_serve(tmp_path_factory.mktemp("serve"), env)
    try:
        serve.wait_ready()
        yield serve
    finally:
        if serve.process.poll() is None:
            serve.stop()


def metric(server: ServeProcess, name: str) -> float:
    text = server.request("GET", "/metrics").body.decode()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return samples[name]


def raw_exchange(server: ServeProcess, data: bytes) -> bytes:
    """Send raw bytes; return everything the server sends before it closes the connection."""
    with socket.create_connection(("127.0.0.1", server.base_port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_health_is_200_with_exactly_the_healthy_body(server: ServeProcess) -> None:
    reply = server.request("GET", "/health")
    assert reply.status == 200
    assert reply.body == b'{"status":"healthy"}'
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["content-length"] == str(len(reply.body))
    assert reply.headers["cache-control"] == "no-store"


def test_readyz_is_the_same_check_and_livez_answers(server: ServeProcess) -> None:
    assert server.request("GET", "/readyz").body == b'{"status":"healthy"}'
    live = server.request("GET", "/livez?probe=kubelet")
    assert (live.status, json.loads(live.body)) == (200, {"status": "alive"})


@pytest.mark.parametrize("path", PATHS)
def test_head_gives_the_headers_of_get_without_a_body(server: ServeProcess, path: str) -> None:
    head = server.request("HEAD", path)
    get = server.request("GET", path)
    assert head.status == get.status == 200
    assert head.body == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if path != "/metrics":  # the metrics text changes between two requests
        assert head.headers["content-length"] == str(len(get.body))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_refused_with_405_and_allow(server: ServeProcess, method: str) -> None:
    reply = server.request(method, "/health")
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"
    assert json.loads(reply.body)["error"]["code"] == "method_not_allowed"
    assert reply.headers["content-length"] == str(len(reply.body))


@pytest.mark.parametrize("path", ["/", "/healthz", "/health/", "/metrics/x"])
def test_unknown_paths_are_404(server: ServeProcess, path: str) -> None:
    reply = server.request("GET", path)
    assert reply.status == 404
    assert json.loads(reply.body)["error"]["code"] == "not_found"
    assert reply.headers["cache-control"] == "no-store"


def test_metrics_are_prometheus_text_matching_the_table(server: ServeProcess) -> None:
    deadline = time.monotonic() + 10
    while True:  # the first token reading lands a moment after the first scrape asks for it
        reply = server.request("GET", "/metrics")
        families = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}
        if "glisk_tokens" in families or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert families["glisk_database_up"].samples[0].value == 1
    assert families["glisk_health_check_seconds"].type == "histogram"
    count = [s for s in families["glisk_health_check_seconds"].samples if s.name.endswith("_count")]
    assert count[0].value >= 1
    per_status = {s.labels["status"]: s.value for s in families["glisk_tokens"].samples}
    assert per_status == {
        "detected": 3,
        "generating": 0,
        "uploading": 0,
        "ready": 2,
        "revealed": 0,
        "failed": 1,
    }
    assert families["glisk_expired_leases"].samples[0].value == 0
    assert families["glisk_oldest_detected_age_seconds"].samples[0].value > 0


def stage_samples(server: ServeProcess) -> dict[str, dict[str, float]]:
    """The glisk_stage_* metrics now, by name, then by stage."""
    text = server.request("GET", "/metrics").body.decode()
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("glisk_stage_"):
                found.setdefault(sample.name, {})[sample.labels["stage"]] = sample.value
    return found


def test_metrics_export_each_stage_s_controls(server: ServeProcess, database_url: str, cli) -> None:
    before = stage_samples(server)
    assert before["glisk_stage_paused"] == {"generation": 0, "upload": 0, "reveal": 0}
    assert before["glisk_stage_jobs_running"] == {"generation": 0, "upload": 0, "reveal": 0}
    assert "glisk_stage_concurrency_limit" not in before  # no stage has a limit
    env = {"DATABASE_URL": database_url}
    changes = [
        ("stage", "pause", "generation"),
        ("stage", "limit", "reveal", "--concurrency", "1", "--rate", "30/m"),
        ("stage", "cooldown", "upload", "1m"),
        ("tokens", "claim", "--stage", "reveal", "--limit", "2"),  # one job: a batch
    ]
    undo = [
        ("stage", "resume", "generation"),
        ("stage", "limit", "reveal", "--concurrency", "none", "--rate", "none"),
        ("stage", "cooldown", "upload", "0s"),
        ("tokens", "release", "10", "11"),
    ]
    try:
        for args in changes:
            assert cli(*args, env=env).exit_code == 0, args
        deadline = time.monotonic() + 10
        # A reading is one snapshot: once it shows the claim, the last change, it shows them all.
        while (now := stage_samples(server))["glisk_stage_jobs_running"]["reveal"] == 0:
            assert time.monotonic() < deadline, now
            time.sleep(0.1)
    finally:
        for args in undo:
            assert cli(*args, env=env).exit_code == 0, args
    assert now["glisk_stage_paused"] == {"generation": 1, "upload": 0, "reveal": 0}
    assert now["glisk_stage_cooling_down"] == {"generation": 0, "upload": 1, "reveal": 0}
    assert now["glisk_stage_jobs_running"] == {"generation": 0, "upload": 0, "reveal": 1}
    assert now["glisk_stage_concurrency_limit"] == {"reveal": 1}
    assert now["glisk_stage_rate_limit_per_second"] == {"reveal": 0.5}


def test_allowed_origin_gets_cors_headers_and_others_do_not(server: ServeProcess) -> None:
    allowed = server.request("GET", "/health", {"Origin": ALLOWED_ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert allowed.headers["vary"] == "Origin"
    other = server.request("GET", "/health", {"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_one_connection_serves_many_requests(server: ServeProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.base_port, timeout=5)
    sockets = set()
    try:
        for path in PATHS * 25:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            sockets.add(id(connection.sock))
    finally:
        connection.close()
    assert len(sockets) == 1


def test_pipelined_requests_are_answered_in_order(server: ServeProcess) -> None:
    request = b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n"
    last = b"GET /livez HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    answer = raw_exchange(server, request % b"/health" + request % b"/nope" + last)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"404", b"200"]
    assert answer.endswith(b'{"status":"alive"}')


def test_a_malformed_request_gets_400_and_the_connection_closed(server: ServeProcess) -> None:
    answer = raw_exchange(server, b"this is not http\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close\r\n" in answer


def test_checks_are_shared_and_cached_whatever_the_request_rate(server: ServeProcess) -> None:
    before, started = metric(server, "glisk_health_check_seconds_count"), time.monotonic()

    def hammer() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.base_port, timeout=5)
        for _ in range(100):
            connection.request("GET", "/health")
            assert connection.getresponse().read() == b'{"status":"healthy"}'
        connection.close()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    checks = metric(server, "glisk_health_check_seconds_count") - before
    # 800 requests; about two checks a second at most (one per half second under traffic).
    assert checks <= 2 * (time.monotonic() - started) + 2


def test_hundreds_of_slow_clients_do_not_stall_anyone(server: ServeProcess) -> None:
    address = ("127.0.0.1", server.base_port)
    slow = [socket.create_connection(address, timeout=5) for _ in range(300)]
    try:
        for sock in slow:  # each sends half a request head and then nothing
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: slow\r\n")
        busy = [socket.create_connection(address, timeout=5) for _ in range(200)]
        for sock in busy:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: busy\r\nConnection: close\r\n\r\n")
        for sock in busy:
            assert sock.makefile("rb").readline().startswith(b"HTTP/1.1 200 ")
            sock.close()
        assert server.request("GET", "/health", timeout=2).status == 200
    finally:
        for sock in slow:
            sock.close()
    assert server.process.poll() is None


def test_sc004_health_answers_in_under_100ms(server: ServeProcess) -> None:
    for _ in range(3):  # warm-up: pooled connection, first check
        server.request("GET", "/health")
    timings = []
    for _ in range(7):
        started = time.perf_counter()
        assert server.request("GET", "/health").status == 200
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.1


def test_requests_are_not_logged_unless_debug(server: ServeProcess) -> None:
    for path in PATHS:
        server.request("GET", path)
    logs = server.logs()
    assert "listening on http://127.0.0.1:" in logs
    assert "/livez" not in logs
    assert "GET" not in logs


# -- these two run last: the first takes the database away (and brings it back), the second
# stops the server.


def test_database_going_away_and_back_is_followed_without_restart(
    server: ServeProcess, proxy: PostgresProxy, database_url: str
) -> None:
    assert server.request("GET", "/health").status == 200

    proxy.down()
    for path in ("/health", "/readyz"):
        reply = server.wait_for_status(path, 503)
        assert json.loads(reply.body) == UNAVAILABLE
        assert reply.headers["content-length"] == str(len(reply.body))
    url = make_url(database_url)
    secrets = [url.password, url.username, url.host, str(url.port), "refused", "psycopg"]
    for secret in filter(None, secrets):
        assert secret.encode() not in reply.body
    assert server.request("GET", "/livez").status == 200
    assert server.request("HEAD", "/health").status == 503
    assert metric(server, "glisk_database_up") == 0
    for _ in range(20):
        server.request("GET", "/health")

    proxy.up()
    assert server.wait_for_status("/health", 200).body == b'{"status":"healthy"}'
    assert metric(server, "glisk_database_up") == 1

    logs = server.logs()
    errors = [line for line in logs.splitlines() if " ERROR " in line]
    assert len(errors) == 1, logs  # once, when the state changed; not once per request
    assert "database unavailable" in errors[0]
    assert "database reachable again after" in logs
    if url.password:
        assert url.password not in logs
        assert f"{url.username}:***@127.0.0.1:{proxy.port}" in errors[0]


def test_sigterm_stops_the_server_with_exit_0_within_2s(server: ServeProcess) -> None:
    exit_code, seconds = server.stop(signal.SIGTERM)
    assert exit_code == 0, server.logs()
    assert seconds < 2
