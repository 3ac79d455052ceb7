"""The ``midi:`` section ``python -m devices init`` writes (simulated hardware, no appservice
part): one port ``keys`` whose input is a FIFO and whose output is another FIFO, both beside
devices.yaml (relative paths are relative to its folder).

Play into it: ``printf '\\x90\\x3c\\x64' > midi-in.fifo``; see what members play:
``cat midi-out.fifo | xxd`` (or point the output at a real device)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devices.midi.config import DEFAULT_MAX_BATCH, DEFAULT_WINDOW_MS


def simulated_section(base_dir: Path) -> dict[str, Any]:
    del base_dir  # the paths are relative to devices.yaml's folder, which is base_dir
    return {
        "ports": [{
            "name": "keys",
            "input": {"kind": "fifo", "path": "midi-in.fifo"},
            "output": {"kind": "fifo", "path": "midi-out.fifo"},
            "batch_window_ms": DEFAULT_WINDOW_MS,
            "max_batch": DEFAULT_MAX_BATCH,
        }],
    }
