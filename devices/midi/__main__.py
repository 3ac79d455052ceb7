"""``python -m devices.midi -c devices.yaml`` runs the service;
``python -m devices.midi export|replay ...`` are the Standard MIDI File tools."""

from __future__ import annotations

import sys

from devices.common.runner import run_service
from devices.midi.device import MidiService


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("export", "replay"):
        from devices.midi.tools import main as tools_main

        return tools_main(args)
    if "-h" in args or "--help" in args:
        print("Standard MIDI File tools: python -m devices.midi export|replay --help\n")
    return run_service(MidiService, args)


if __name__ == "__main__":
    raise SystemExit(main())
