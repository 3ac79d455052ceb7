"""``python -m bench [--only edgehs|synapse] [--quick] [--no-write] [--midi | --devices]``.

Measures edgehs, then Synapse, one at a time on fresh data dirs, prints the comparison table
and writes it to bench/RESULTS.md. Exit code 0 when every selected server was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import signal
import sys
from pathlib import Path

from bench import devices, e2ee, edgehs, midi, report, sliding_sync, synapse
from bench.model import FULL, QUICK, Params, ServerResult
from bench.runner import Target, log, run_server

BENCH_DIR = Path(__file__).resolve().parent
WORK = BENCH_DIR / ".work"
SYNAPSE_VENV = WORK / "synapse-venv"


def _targets() -> dict[str, Target]:
    return {
        "edgehs": Target(
            name="edgehs",
            slug="edgehs",
            version=edgehs.version,
            prepare=edgehs.prepare,
        ),
        "synapse": Target(
            name="Synapse",
            slug="synapse",
            version=lambda: synapse.ensure_venv(SYNAPSE_VENV, WORK / "synapse-install.log"),
            prepare=lambda root, port: synapse.prepare(root, port, SYNAPSE_VENV),
        ),
    }


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=["edgehs", "synapse"], help="measure one server only")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (development)")
    parser.add_argument(
        "--no-write", action="store_true", help="print the table but leave RESULTS.md alone"
    )
    parser.add_argument(
        "--midi", action="store_true",
        help="run only the MIDI device scenario (edgehs only: Synapse has no equivalent)",
    )
    parser.add_argument(
        "--devices", action="store_true",
        help="run only the device processes' memory scenario (edgehs and its device services)",
    )
    parser.add_argument(
        "--sliding-sync", action="store_true",
        help="run only the simplified sliding sync (MSC4186) scenario, on both servers",
    )
    parser.add_argument(
        "--e2ee", action="store_true",
        help="run only the E2EE scenario (/keys/query and to-device latency), on both servers",
    )
    return parser.parse_args(argv)


async def _run(selected: list[Target], params: Params) -> list[ServerResult]:
    results = []
    for target in selected:
        results.append(await run_server(target, WORK, params))
    return results


def _on_sigterm(signum: int, frame: object) -> None:
    # Turn SIGTERM into SystemExit so `finally` blocks and atexit stop the servers.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    params = QUICK if args.quick else FULL
    targets = _targets()
    selected = [targets[args.only]] if args.only else [targets["edgehs"], targets["synapse"]]
    WORK.mkdir(parents=True, exist_ok=True)
    with (WORK / "lock").open("w") as lock:
        # Two runs at once would wipe each other's data dirs and fight over the CPUs.
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another bench run holds {WORK / 'lock'}; not starting")
            return 2
        if args.midi:
            command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
            return midi.main(WORK, args.quick, not args.no_write, command)
        if args.devices:
            command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
            return devices.main(WORK, not args.no_write, command)
        if args.sliding_sync:
            command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
            return sliding_sync.main(WORK, args.quick, not args.no_write, command, args.only)
        if args.e2ee:
            command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
            return e2ee.main(selected, WORK, args.quick, not args.no_write, command,
                             BENCH_DIR / "RESULTS.md")
        try:
            results = asyncio.run(_run(selected, params))
        except KeyboardInterrupt:
            log("interrupted; servers stopped")
            return 130
    command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
    body = report.section(command, params, results)
    print(body)
    if not args.no_write:
        report.write_results(BENCH_DIR / "RESULTS.md", body)
        log(f"wrote {BENCH_DIR / 'RESULTS.md'}")
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
