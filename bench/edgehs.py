"""edgehs as the server under test: ``edgehs generate-config``, then rate limits off, then run.

The console script is the ``edgehs`` beside the interpreter running the bench (the project
venv's ``.venv/bin/edgehs``), so the bench measures the tree it is run from.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from bench.procs import Launch

SERVER_NAME = "bench.local"


def edgehs_bin() -> Path:
    return Path(sys.executable).parent / "edgehs"


def version() -> str:
    try:
        return metadata.version("edgehs")
    except metadata.PackageNotFoundError:
        return "unknown"


def _disable_rate_limits(config_path: Path) -> None:
    loaded = yaml.safe_load(config_path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise RuntimeError(f"{config_path} is not a YAML mapping")
    config: dict[str, Any] = loaded
    limits = config.get("rate_limits")
    config["rate_limits"] = {**(limits if isinstance(limits, dict) else {}), "enabled": False}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def prepare(root: Path, port: int) -> Launch:
    """Fresh ``root`` (wiped), config generated there with rate limits off; the Launch to run it."""
    binary = edgehs_bin()
    if not binary.exists():
        raise RuntimeError(f"{binary} not found: is the project installed in this venv?")
    if root.exists():
        shutil.rmtree(root)
    data = root / "data"
    data.mkdir(parents=True)
    generate = [
        str(binary), "generate-config",
        "--server-name", SERVER_NAME,
        "--data-dir", str(data),
        "--listen", f"127.0.0.1:{port}",
        "--enable-registration",
    ]  # fmt: skip
    done = subprocess.run(generate, cwd=root, capture_output=True, text=True, timeout=120)
    config_path = data / "edgehs.yaml"
    if done.returncode != 0 or not config_path.exists():
        raise RuntimeError(
            f"`{' '.join(generate)}` failed (exit {done.returncode}, "
            f"{config_path} {'exists' if config_path.exists() else 'missing'}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    _disable_rate_limits(config_path)
    return Launch(
        name="edgehs",
        argv=[str(binary), "run", "-c", str(config_path)],
        cwd=root,
        log_path=root / "stdout.log",
        base_url=f"http://127.0.0.1:{port}",
        config_path=config_path,
    )
