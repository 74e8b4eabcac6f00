"""The runner's Prometheus metrics (`glisk work --metrics-port`): attempts by stage and
outcome, attempt duration, attempts in flight, lease renewals and leases lost. Each runner
keeps its own registry, so two runners in one process never share a counter."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Seconds to minutes: image generation is long, a reveal batch longer; a no-op is milliseconds.
_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class RunnerMetrics:
    def __init__(self, stage: str) -> None:
        self.registry = CollectorRegistry()
        self._stage = stage
        self.attempts = Counter(
            "glisk_work_attempts",
            "Attempts finished, by outcome (succeeded, failed, lost, released).",
            ["stage", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "glisk_work_attempt_duration_seconds",
            "How long one attempt ran.",
            ["stage"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "glisk_work_in_flight", "Attempts running now.", ["stage"], registry=self.registry
        )
        self.renewals = Counter(
            "glisk_work_lease_renewals", "Leases renewed.", ["stage"], registry=self.registry
        )
        self.lost = Counter(
            "glisk_work_leases_lost",
            "Leases found taken over or ended while their work ran.",
            ["stage"],
            registry=self.registry,
        )

    def attempt(self, outcome: str, seconds: float, tokens: int = 1) -> None:
        self.attempts.labels(self._stage, outcome).inc(tokens)
        self.duration.labels(self._stage).observe(seconds)

    def serve(self, port: int, host: str) -> None:
        """Serve /metrics on `host:port` from a daemon thread, for the runner's lifetime."""
        start_http_server(port, addr=host, registry=self.registry)
