"""The ``edgehs`` command: generate-config and register-user."""

import asyncio
import stat
from pathlib import Path

import pytest
import yaml

from edgehs.cli import main
from edgehs.config import load_config
from edgehs.homeserver import HomeServer


def generate(data_dir: Path, *extra: str) -> int:
    return main(["generate-config", "--server-name", "pi.local", "--data-dir", str(data_dir),
                 *extra])


def test_generate_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert generate(data, "--listen", "0.0.0.0:8448") == 0
    path = data / "edgehs.yaml"
    config = load_config(path)
    assert (config.server_name, config.listen_host, config.listen_port) == ("pi.local",
                                                                            "0.0.0.0", 8448)
    assert config.enable_registration is False
    key = config.signing_key_path
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("ed25519 a_")
    assert str(path) in capsys.readouterr().out


def test_generate_config_refuses_to_overwrite(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert generate(data) == 0
    config_text = (data / "edgehs.yaml").read_text()
    key_text = (data / "signing.key").read_text()
    capsys.readouterr()
    assert generate(data, "--enable-registration") == 1
    assert "already exists" in capsys.readouterr().err
    assert (data / "edgehs.yaml").read_text() == config_text
    assert (data / "signing.key").read_text() == key_text


def test_generate_config_rejects_bad_listen(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert generate(tmp_path / "data", "--listen", "nowhere") == 2
    assert "listen" in capsys.readouterr().err
    assert not (tmp_path / "data" / "edgehs.yaml").exists()


def user_exists(config_path: Path, user_id: str) -> bool:
    async def run() -> bool:
        server = HomeServer(load_config(config_path))
        await server.start()
        try:
            return await server.user_store.get_user(user_id) is not None
        finally:
            await server.stop()
    return asyncio.run(run())


def test_register_user_with_registration_off(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert generate(data) == 0
    config_path = data / "edgehs.yaml"
    assert yaml.safe_load(config_path.read_text())["enable_registration"] is False
    capsys.readouterr()
    assert main(["register-user", "-c", str(config_path), "alice", "--password", "pw"]) == 0
    assert "@alice:pi.local" in capsys.readouterr().out
    assert user_exists(config_path, "@alice:pi.local")
    # the same name again fails with exit code 1 and says why
    assert main(["register-user", "-c", str(config_path), "alice", "--password", "x"]) == 1
    assert "cannot register alice" in capsys.readouterr().err
    assert main(["register-user", "-c", str(config_path), "Bad Name", "--password", "x"]) == 1
    assert main(["register-user", "-c", str(config_path), "root", "--password", "pw",
                 "--admin"]) == 0


def test_bad_config_file_is_exit_code_2(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "edgehs.yaml"
    path.write_text("server_name: example.org\nlisten: nowhere\n")
    assert main(["register-user", "-c", str(path), "alice", "--password", "pw"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and str(path) in err and "listen" in err
    assert main(["register-user", "-c", str(tmp_path / "absent.yaml"), "a",
                 "--password", "pw"]) == 2
