"""DATA_DIR/edgehs.lock: one writer per data dir (edgehs.store.writer_lock)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import make_config

from edgehs.cli import main
from edgehs.homeserver import HomeServer
from edgehs.store.writer_lock import DataDirLock, DataDirLocked, lock_path


def test_a_second_acquisition_fails_until_the_holder_releases(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = DataDirLock.acquire(data)  # creates the folder if needed
    assert lock_path(data).read_text().strip() == str(os.getpid())
    with pytest.raises(DataDirLocked) as raised:
        DataDirLock.acquire(data)
    assert raised.value.pid == os.getpid() and raised.value.data_dir == data
    message = str(raised.value)
    assert str(data) in message and f"pid {os.getpid()}" in message
    assert "\n" not in message
    first.release()
    first.release()  # idempotent
    assert not first.held
    second = DataDirLock.acquire(data)
    assert second.held
    second.release()


def test_a_dead_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    """The kernel drops an flock with its process: a killed holder leaves the file, not the
    lock (and its pid, for the message while it lived)."""
    data = tmp_path / "data"
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from edgehs.store.writer_lock import DataDirLock
        DataDirLock.acquire(Path({str(data)!r}))
        print("locked", flush=True)
        sys.stdin.read()
        os._exit(9)  # no release, no cleanup
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirLocked) as raised:
            DataDirLock.acquire(data)
        assert raised.value.pid == child.pid
    finally:
        child.communicate("", timeout=30)
    assert child.returncode == 9
    lock = DataDirLock.acquire(data)
    assert lock_path(data).read_text().strip() == str(os.getpid())
    lock.release()


async def test_the_server_holds_the_lock_while_it_runs(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data")
    server = HomeServer(config)
    await server.start()
    try:
        with pytest.raises(DataDirLocked):
            DataDirLock.acquire(config.data_dir)
        second = HomeServer(config)
        with pytest.raises(DataDirLocked):
            await second.start()  # refused before it opens the database
    finally:
        await server.stop()
    DataDirLock.acquire(config.data_dir).release()  # stopped: free again


def test_run_refuses_a_locked_data_dir(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path / "data")
    lock = DataDirLock.acquire(config.data_dir)
    try:
        capsys.readouterr()
        assert main(["run", "-c", str(config.data_dir / "edgehs.yaml")]) == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1
        assert str(config.data_dir) in err and f"pid {os.getpid()}" in err
    finally:
        lock.release()
    assert not (config.data_dir / "admin.secret").exists()


def test_register_user_holds_the_lock_while_it_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Written directly (no server runs), the command holds the lock meanwhile: an
    ``edgehs run`` started then would be refused."""
    config = make_config(tmp_path / "data")
    seen: list[bool] = []
    real_start = HomeServer.start

    async def start(self: HomeServer) -> None:
        await real_start(self)
        try:
            DataDirLock.acquire(config.data_dir).release()
            seen.append(False)
        except DataDirLocked:
            seen.append(True)

    monkeypatch.setattr(HomeServer, "start", start)
    assert main(["register-user", "-c", str(config.data_dir / "edgehs.yaml"), "alice",
                 "--password", "pw"]) == 0
    assert seen == [True]
    assert "Registered @alice:test.local" in capsys.readouterr().out
    DataDirLock.acquire(config.data_dir).release()  # released when it is done
