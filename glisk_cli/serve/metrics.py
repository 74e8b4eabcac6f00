"""The Prometheus metrics behind /metrics: the database check's gauge and histogram, and the
pipeline's token counts, read by whoever knows the tables (`glisk serve` passes its reader in).

This module only keeps and renders the metrics; the application in `glisk_cli.serve.app` feeds
them from the checks' outcomes and decides when to render them again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
class TokenMetrics:
    """One reading of the pipeline's tokens, exported on /metrics."""

    by_status: Mapping[str, int]
    expired_leases: int
    oldest_detected_age_seconds: float | None  # None: no token is waiting in `detected`


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
        return [tokens, expired, oldest]


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
