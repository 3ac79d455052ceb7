"""SyTest as a gate: run the Matrix project's suite against this checkout and fail when a test
listed in ``passing.txt`` does not pass.

    python tests/sytest/gate.py [--out DIR] [--update] [--results FILE] [run-tests.pl args...]

- Runs ``run.sh`` of the SyTest folder beside the repository (``../shared/sytest``, or
  ``$SYTEST_DIR``) with the plugin in ``tests/sytest/plugins``, into ``--out``
  (default ``/tmp/edgehs-sytest``). ``--results FILE`` reads an earlier run's ``results.json``
  instead of running anything.
- A listed test that failed is run once more, with the rest of its file (SyTest's fixtures
  are per file), and counts as passed if it passes then; it is named as flaky either way.
- Test files or folders among the arguments (``tests/30rooms/10redactions.pl``) run only those,
  and only their listed tests count.
- ``--update`` adds every test that passed to ``passing.txt``. The list only grows: a test
  leaves it only by hand, with the reason in the commit.

Prints the counts per test directory, the listed tests that failed, the tests that pass but
are not listed yet, and last ``sytest: N passed, M failed`` over the listed tests. Exit 1 when
a listed test failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LIST = HERE / "passing.txt"


def sytest_dir() -> Path:
    found = os.environ.get("SYTEST_DIR")
    return Path(found) if found else ROOT.parent / "shared" / "sytest"


def key(test: dict[str, str]) -> str:
    """A test's line in passing.txt: its file and name (names repeat across files)."""
    return f"{test['file']}: {test['name']}"


def read_list(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def write_list(path: Path, keys: set[str]) -> None:
    head = ("# SyTest tests edgehs passes (tests/sytest/gate.py). CI fails when one of them\n"
            "# fails. Add with `make sytest-update`; remove only by hand, saying why.\n")
    path.write_text(head + "".join(f"{k}\n" for k in sorted(keys)))


def run(out: Path, args: list[str]) -> list[dict[str, str]]:
    """One run of SyTest's run.sh into ``out``; its per-test results."""
    out.mkdir(parents=True, exist_ok=True)
    venv = out / "venv"
    # run.sh installs the project into OUT/venv: reuse the checkout's own environment.
    if not venv.exists() and (ROOT / ".venv" / "bin" / "python").exists():
        venv.symlink_to(ROOT / ".venv")
    env = {**os.environ, "SYTEST_PLUGINS": str(HERE / "plugins")}
    with open(out / "run.log", "w") as log:
        subprocess.run(["bash", str(sytest_dir() / "run.sh"), str(ROOT), str(out), *args],
                       env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    return load(out / "results.json")


def load(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        sys.exit(f"sytest: no results in {path}: see the run.log beside it")
    return list(json.loads(path.read_text()))


def expand_folders(args: list[str]) -> list[str]:
    """run-tests.pl takes test files only: a folder of tests stands for its files."""
    out: list[str] = []
    for arg in args:
        folder = sytest_dir() / "sytest" / arg
        if arg.startswith("tests/") and folder.is_dir():
            out += sorted(str(p.relative_to(sytest_dir() / "sytest"))
                          for p in folder.rglob("*.pl"))
        else:
            out.append(arg)
    return out


def print_counts(tests: list[dict[str, str]]) -> None:
    rows: dict[str, Counter[str]] = {}
    for t in tests:
        parts = t["file"].split("/")
        group = "/".join(parts[:2]) if len(parts) > 2 else t["file"]
        rows.setdefault(group, Counter())[t["status"]] += 1
    print(f"{'directory':<28} {'ok':>5} {'not ok':>7} {'skipped':>8}")
    for group in sorted(rows):
        c = rows[group]
        print(f"{group:<28} {c['ok']:>5} {c['fail'] + c['expected-fail']:>7} {c['skip']:>8}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/edgehs-sytest"))
    ap.add_argument("--update", action="store_true")
    ap.add_argument("--results", type=Path)
    args, extra = ap.parse_known_args()
    extra = expand_folders(extra)

    tests = load(args.results) if args.results else run(args.out, extra)
    passed = {key(t) for t in tests if t["status"] == "ok"}
    listed = read_list(LIST)
    # Test files or folders named on the command line: only their listed tests count.
    chosen = tuple(a.rstrip("/") for a in extra if a.startswith("tests/"))
    if chosen:
        listed = [k for k in listed if k.startswith(chosen)]
    failed = [k for k in listed if k not in passed]
    flaky = []
    if failed and not args.results:
        files = sorted({k.split(": ", 1)[0] for k in failed})
        print(f"sytest: {len(failed)} listed tests failed; running {len(files)} files again",
              flush=True)
        again = {key(t) for t in run(args.out / "retry", files) if t["status"] == "ok"}
        flaky = [k for k in failed if k in again]
        failed = [k for k in failed if k not in again]
    print_counts(tests)
    for k in flaky:
        print(f"flaky (passed on the second run): {k}")
    for k in failed:
        print(f"FAILED (listed in passing.txt): {k}")
    new = sorted(passed - set(listed))
    if new and args.update:
        write_list(LIST, set(read_list(LIST)) | passed)
        print(f"sytest: added {len(new)} tests to {LIST.relative_to(ROOT)}")
    elif new:
        print(f"sytest: {len(new)} tests pass that passing.txt does not list yet "
              "(make sytest-update adds them):")
        for k in new:
            print(f"  {k}")
    print(f"sytest: {len(listed) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
