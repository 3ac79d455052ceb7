"""Simulated hardware for ``python -m devices init``: one mock board with an LED, a doorbell
button, a motion sensor and the CPU temperature (read from a file beside devices.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def simulated_section(base_dir: Path) -> dict[str, Any]:
    """The ``gpio:`` section without its ``appservice`` part (the kit adds that)."""
    return {
        "pin_factory": "mock",
        "boards": [{
            "name": "board",
            "label": "Simulated board",
            "sim_socket": "gpio-sim-board.sock",  # relative to devices.yaml
            "devices": [
                {"name": "porch_light", "kind": "LED", "pin": 17},
                {"name": "doorbell", "kind": "Button", "pin": 2, "bounce_time": 0.05},
                {"name": "hall_motion", "kind": "MotionSensor", "pin": 4, "min_interval": 1.0},
                {"name": "cpu", "kind": "CPUTemperature",
                 "sensor_file": "gpio-board-cpu-temp", "poll_interval": 5.0},
            ],
        }],
    }
