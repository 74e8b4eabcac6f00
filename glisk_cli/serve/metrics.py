"""The Prometheus metrics behind /metrics: the database check's gauge and histogram, and the
pipeline's token counts and each stage's flow control, read by whoever knows the tables
(`glisk serve` passes its reader in).

This module only keeps and renders the metrics; the application in `glisk_cli.serve.app` feeds
them from the checks' outcomes and decides when to render them again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format `Metrics.render` writes


# -- token metrics: fed by whoever knows the tables ------------------------------------------


@dataclass(frozen=True)
class StageMetrics:
    """One stage's flow control (`glisk stage list`), exported on /metrics."""

    stage: str
    paused: bool
    cooling_down: bool
    jobs_running: int  # live leases of the stage, fleet-wide
    concurrency_limit: int | None  # None: no limit
    rate_limit_per_second: float | None  # None: no limit


@dataclass(frozen=True)
class TokenMetrics:
    """One reading of the pipeline's tokens and its stages' controls, exported on /metrics."""

    by_status: Mapping[str, int]
    expired_leases: int
    oldest_detected_age_seconds: float | None  # None: no token is waiting in `detected`
    stages: Sequence[StageMetrics] = ()


TokenMetricsSource = Callable[[], "TokenMetrics | None"]


def no_token_metrics() -> TokenMetrics | None:
    """The default source: no token tables to read yet, so the token metrics are left out."""
    return None


class _TokenCollector:
    """Exports the last TokenMetrics reading, or nothing while there is none."""

    def __init__(self) -> None:
        self.reading: TokenMetrics | None = None

    def describe(self) -> list[Metric]:
        return self._families(TokenMetrics({}, 0, None))

    def collect(self) -> list[Metric]:
        return self._families(self.reading) if self.reading is not None else []

    @staticmethod
    def _families(reading: TokenMetrics) -> list[Metric]:
        tokens = GaugeMetricFamily("glisk_tokens", "Tokens per status.", labels=["status"])
        for status, count in reading.by_status.items():
            tokens.add_metric([status], count)
        expired = GaugeMetricFamily(
            "glisk_expired_leases", "Claimed tokens whose lease expired.", reading.expired_leases
        )
        oldest = GaugeMetricFamily(
            "glisk_oldest_detected_age_seconds",
            "Age of the oldest token still in detected (0 when there is none).",
            reading.oldest_detected_age_seconds or 0.0,
        )
        return [tokens, expired, oldest, *_stage_families(reading.stages)]


def _stage_families(stages: Sequence[StageMetrics]) -> list[Metric]:
    """Each stage's controls; a limit that is not set has no sample (no limit is not zero)."""
    paused = GaugeMetricFamily(
        "glisk_stage_paused",
        "1 while the stage is paused (no job starts), else 0.",
        labels=["stage"],
    )
    cooling = GaugeMetricFamily(
        "glisk_stage_cooling_down",
        "1 while the stage cools down (no job starts), else 0.",
        labels=["stage"],
    )
    running = GaugeMetricFamily(
        "glisk_stage_jobs_running",
        "Jobs of the stage running now across the fleet (live leases).",
        labels=["stage"],
    )
    concurrency = GaugeMetricFamily(
        "glisk_stage_concurrency_limit",
        "The most jobs of the stage that may run at once (only stages with a limit).",
        labels=["stage"],
    )
    rate = GaugeMetricFamily(
        "glisk_stage_rate_limit_per_second",
        "The most job starts per second the stage allows (only stages with a rate limit).",
        labels=["stage"],
    )
    for stage in stages:
        paused.add_metric([stage.stage], 1 if stage.paused else 0)
        cooling.add_metric([stage.stage], 1 if stage.cooling_down else 0)
        running.add_metric([stage.stage], stage.jobs_running)
        if stage.concurrency_limit is not None:
            concurrency.add_metric([stage.stage], stage.concurrency_limit)
        if stage.rate_limit_per_second is not None:
            rate.add_metric([stage.stage], stage.rate_limit_per_second)
    return [paused, cooling, running, concurrency, rate]


# -- the registry -------------------------------------------------------------------------------


class Metrics:
    """The registry behind /metrics, fed by the checks' outcomes.

    Callers call `changed()` after updating it; `version` counts those calls, so that the server
    renders the metrics once per change, not once per scrape.
    """

    def __init__(self) -> None:
        # No `_created` series: they only add noise to a scrape (process-wide; this process serves).
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self.database_up = Gauge(
            "glisk_database_up",
            "1 when the last database check succeeded, else 0.",
            registry=self.registry,
        )
        self.check_seconds = Histogram(
            "glisk_health_check_seconds",
            "Duration of database health checks (a timed-out check counts as its timeout).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.tokens = _TokenCollector()
        self.registry.register(self.tokens)
        self.version = 0

    def changed(self) -> None:
        self.version += 1

    def render(self) -> bytes:
        """Every metric in the Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
