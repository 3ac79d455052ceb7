"""The markdown table (metric | edgehs | Synapse | ratio) and the RESULTS.md section."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from bench.model import METRICS, Metric, Params, ServerResult

BEGIN = "<!-- bench:results:begin (written by `python -m bench`; edit outside these markers) -->"
END = "<!-- bench:results:end -->"

_HEADER = """# edgehs vs Synapse: Client-Server benchmark results

What is measured and how: see [README.md](README.md). The section between the markers is
rewritten by every `python -m bench` run (unless `--no-write`); notes outside it are kept.

"""


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(metric: Metric, ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return "—"
    ratio = ours / theirs
    if ratio == 1.0:
        word = "equal"
    elif (ratio > 1.0) == metric.higher_is_better:
        word = "better"
    else:
        word = "worse"
    return f"{ratio:.2f}x ({word})"


def table(edgehs: ServerResult | None, synapse: ServerResult | None) -> str:
    rows = [
        "| metric | edgehs | Synapse | ratio edgehs/Synapse |",
        "| --- | ---: | ---: | --- |",
    ]
    for metric in METRICS:
        ours = edgehs.metrics.get(metric.key) if edgehs else None
        theirs = synapse.metrics.get(metric.key) if synapse else None
        rows.append(
            f"| {metric.label} ({metric.unit}) | {_fmt(ours)} | {_fmt(theirs)} "
            f"| {_ratio(metric, ours, theirs)} |"
        )
    return "\n".join(rows)


def notes(results: list[ServerResult]) -> str:
    lines = []
    for result in results:
        if result.error:
            lines.append(f"- **{result.name} not measured**: {_one_block(result.error)}")
        lines.extend(f"- {result.name}: {_one_block(note)}" for note in result.notes)
    return "\n".join(lines)


def _one_block(text: str) -> str:
    first, _, rest = text.partition("\n")
    if not rest.strip():
        return first
    return (
        first + "\n\n  ```\n" + "\n".join("  " + ln for ln in rest.splitlines()[-25:]) + "\n  ```"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "?"


def context(command: str, params: Params, results: list[ServerResult]) -> str:
    versions = ", ".join(f"{r.name} {r.version}" for r in results)
    return "\n".join(
        [
            f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"- machine: nproc={os.cpu_count()}, {_cpu_model()}, {_mem_total_gib()} RAM, "
            f"{platform.platform()}",
            f"- python: {sys.version.split()[0]} (client and both servers)",
            f"- command: `{command}`",
            f"- versions: {versions}; client aiohttp {metadata.version('aiohttp')}",
            f"- sizes: sequential {params.seq_messages} msgs; concurrent {params.conc_clients} "
            f"clients x {params.conc_messages} msgs into one room; initial sync of "
            f"{params.sync_rooms} rooms (timeline limit {params.sync_timeline_limit}, median of "
            f"{params.sync_samples}); {params.wake_samples} wake-up samples; pagination of "
            f"{params.page_events} events, limit {params.page_limit}; appservice: "
            f"{params.as_messages} msgs one by one (latency) + {params.as_messages} with "
            f"{params.as_concurrency} in flight (burst)",
        ]
    )


def section(command: str, params: Params, results: list[ServerResult]) -> str:
    by_name = {r.name: r for r in results}
    parts = [
        "## Latest run",
        context(command, params, results),
        table(by_name.get("edgehs"), by_name.get("Synapse")),
    ]
    extra = notes(results)
    if extra:
        parts.append("Notes:\n\n" + extra)
    return "\n\n".join(parts)


def write_results(path: Path, body: str) -> None:
    """Replace the marked section of ``path`` (create the file if needed), keep the rest."""
    block = f"{BEGIN}\n{body}\n{END}"
    text = path.read_text() if path.exists() else _HEADER
    if BEGIN in text and END in text:
        head, _, tail = text.partition(BEGIN)
        _, _, tail = tail.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
