"""What a run measures: the parameters, the metric catalogue and one server's results."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Params:
    """Sizes of each scenario. ``FULL`` is the reported run, ``QUICK`` is for development."""

    seq_messages: int = 300
    conc_clients: int = 8
    conc_messages: int = 100
    sync_rooms: int = 5
    sync_room_messages: int = 20
    sync_timeline_limit: int = 10
    sync_samples: int = 5
    wake_samples: int = 30
    page_limit: int = 50
    as_messages: int = 500
    as_concurrency: int = 8
    startup_timeout_s: float = 120.0

    @property
    def page_events(self) -> int:
        """Pagination walks back through the sequential-send room's messages."""
        return self.seq_messages


FULL = Params()
QUICK = Params(
    seq_messages=100,
    conc_messages=20,
    sync_room_messages=5,
    sync_samples=3,
    wake_samples=8,
    as_messages=100,
)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool = False


METRICS: tuple[Metric, ...] = (
    Metric("startup_ms", "startup, fresh data dir (spawn -> /versions 200)", "ms"),
    Metric("restart_ms", "restart with the run's data (spawn -> /versions 200)", "ms"),
    Metric("rss_idle_mb", "RSS idle after startup", "MiB"),
    Metric("rss_load_mb", "RSS after load", "MiB"),
    Metric("rss_peak_mb", "peak RSS (VmHWM)", "MiB"),
    Metric("cpu_load_s", "server CPU time during the scenarios", "s"),
    Metric("seq_rate", "sequential send throughput", "msg/s", higher_is_better=True),
    Metric("seq_p50", "sequential send latency p50", "ms"),
    Metric("seq_p95", "sequential send latency p95", "ms"),
    Metric("conc_rate", "concurrent send throughput", "msg/s", higher_is_better=True),
    Metric("conc_p50", "concurrent send latency p50", "ms"),
    Metric("conc_p95", "concurrent send latency p95", "ms"),
    Metric("isync_ms", "initial /sync (median)", "ms"),
    Metric("wake_p50", "sync wake-up latency p50", "ms"),
    Metric("wake_p95", "sync wake-up latency p95", "ms"),
    Metric("page_total_ms", "/messages back-pagination, total", "ms"),
    Metric("page_p50", "/messages per-page latency p50", "ms"),
    Metric("as_rate", "events through to an appservice (burst)", "ev/s", True),
    Metric("as_p50", "send -> appservice arrival latency p50", "ms"),
    Metric("as_p99", "send -> appservice arrival latency p99", "ms"),
)


@dataclass
class ServerResult:
    """Everything measured for one server; ``error`` is set when it could not be measured."""

    name: str
    version: str = "?"
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
