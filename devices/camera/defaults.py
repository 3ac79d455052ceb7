"""The ``camera:`` section ``python -m devices init`` writes (simulated hardware, no appservice
part): one camera ``front`` showing a generated test pattern, offering ICE on loopback only.
For a real camera change ``source`` to ``{kind: v4l2, path: /dev/video0}`` and ``ice_hosts`` to
the Pi's LAN address (or interface name, e.g. ``eth0``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def simulated_section(base_dir: Path) -> dict[str, Any]:
    del base_dir  # nothing on disk
    return {
        "cameras": [{
            "name": "front",
            "source": {"kind": "test_pattern", "width": 320, "height": 240, "fps": 15,
                       "pattern": "bars"},
            "ice_hosts": ["127.0.0.1"],
            "max_viewers": 4,
            "motion": {"enabled": False, "threshold": 0.02, "min_interval": 30},
        }],
    }
