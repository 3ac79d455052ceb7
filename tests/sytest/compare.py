"""SyTest side by side: edgehs and Synapse on the same SyTest commit, counts per directory.

    python tests/sytest/compare.py [--out DIR] [--edgehs RESULTS.json] [--synapse RESULTS.json]

Without ``--synapse`` it installs the Synapse release that ``bench/`` pins into ``DIR/venv-synapse``
(from PyPI, first run only) and runs SyTest's own Synapse driver (``-I Synapse``, SQLite) with
the same ``run.sh`` the gate uses, into ``DIR/synapse``; without ``--edgehs`` it runs edgehs
into ``DIR/edgehs``. Then it prints, per test directory, the tests each passed, and the totals
over "our scope": every test but ``tests/50federation`` and those that need room versions
1 to 9, which edgehs does not serve yet.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from gate import load, run  # noqa: E402

OLD_ROOM_VERSION = re.compile(r"(room|rooms) (with |in room )?version [1-9]\b")


def group(test: dict[str, str]) -> str:
    parts = test["file"].split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else test["file"]


def in_scope(test: dict[str, str]) -> bool:
    return not test["file"].startswith("tests/50federation") and not OLD_ROOM_VERSION.search(
        test["name"])


def run_synapse(out: Path) -> list[dict[str, str]]:
    from bench import synapse
    venv = out / "venv-synapse"
    version = synapse.ensure_venv(venv, out / "synapse-install.log")
    # SyTest's Synapse config turns URL previews on, which need these at start-up.
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "lxml", "beautifulsoup4"],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"sytest: Synapse {version} from {venv}", flush=True)
    return run(out / "synapse", ["-I", "Synapse", "--python", str(venv / "bin" / "python")])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/edgehs-sytest-compare"))
    ap.add_argument("--edgehs", type=Path)
    ap.add_argument("--synapse", type=Path)
    args = ap.parse_args()
    ours = load(args.edgehs) if args.edgehs else run(args.out / "edgehs", [])
    theirs = load(args.synapse) if args.synapse else run_synapse(args.out)

    passed: dict[str, Counter[str]] = {"edgehs": Counter(), "synapse": Counter()}
    totals: dict[str, Counter[str]] = {"edgehs": Counter(), "synapse": Counter()}
    groups: set[str] = set()
    for name, tests in (("edgehs", ours), ("synapse", theirs)):
        for t in tests:
            groups.add(group(t))
            totals[name]["all"] += 1
            if in_scope(t):
                totals[name]["scope"] += 1
            if t["status"] == "ok":
                passed[name][group(t)] += 1
                passed[name]["all"] += 1
                if in_scope(t):
                    passed[name]["scope"] += 1
    print(f"{'directory':<28} {'edgehs':>7} {'Synapse':>8}")
    for g in sorted(groups):
        print(f"{g:<28} {passed['edgehs'][g]:>7} {passed['synapse'][g]:>8}")
    for key, label in (("all", "all tests"), ("scope", "our scope")):
        print(f"{label:<28} {passed['edgehs'][key]:>4}/{totals['edgehs'][key]:<4}"
              f"{passed['synapse'][key]:>4}/{totals['synapse'][key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
