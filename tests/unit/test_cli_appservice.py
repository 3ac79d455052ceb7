"""``edgehs appservice new`` and start-up validation of registration files (``edgehs run``)."""

import asyncio
import stat
from pathlib import Path

import pytest
import yaml

from edgehs.cli import main
from edgehs.config import load_config
from edgehs.homeserver import HomeServer
from edgehs.service.appservice.registration import load_registrations

TELEGRAM_USERS = "^@telegram_.+:pi.local$"


def generate(data_dir: Path) -> Path:
    assert main(["generate-config", "--server-name", "pi.local", "--data-dir", str(data_dir),
                 "--listen", "127.0.0.1:1"]) == 0
    return data_dir / "edgehs.yaml"


def new(*args: str) -> int:
    return main(["appservice", "new", *args])


def test_new_with_config_writes_a_loadable_file_and_lists_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = generate(tmp_path / "data")
    before = config_path.read_text()
    comments = [line for line in before.splitlines() if line.startswith("#")]
    capsys.readouterr()
    assert new("telegram", "--url", "http://localhost:29317", "--users", TELEGRAM_USERS,
               "^@telegrambot:pi.local$", "--aliases", "^#telegram_.+:pi.local$",
               "--receive-ephemeral", "-c", str(config_path)) == 0
    out = capsys.readouterr().out
    reg_path = tmp_path / "data" / "appservices" / "telegram.yaml"
    assert str(reg_path) in out and "Restart edgehs" in out and str(config_path) in out
    assert stat.S_IMODE(reg_path.stat().st_mode) == 0o600
    after = config_path.read_text()
    assert [line for line in after.splitlines() if line.startswith("#")] == comments
    assert yaml.safe_load(after)["app_service_config_files"] == ["appservices/telegram.yaml"]
    config = load_config(config_path)
    [service] = load_registrations(config.app_service_config_files, config.server_name)
    assert (service.id, service.url, service.sender) == ("telegram", "http://localhost:29317",
                                                         "@telegram:pi.local")
    assert service.exclusive_user("@telegram_42:pi.local") and service.receive_ephemeral
    assert service.exclusive_alias("#telegram_chat:pi.local")

    # a second one, non-exclusive, written outside data_dir: listed by its absolute path
    other = tmp_path / "elsewhere" / "irc.yaml"
    assert new("irc", "--url", "https://irc.example", "--users", "@irc_.*", "--no-exclusive",
               "--sender-localpart", "ircbot", "-c", str(config_path), "--out", str(other)) == 0
    config = load_config(config_path)
    assert config.app_service_config_files[1] == other.resolve()
    services = load_registrations(config.app_service_config_files, config.server_name)
    assert [s.id for s in services] == ["telegram", "irc"]
    assert services[1].owns_user("@irc_x:pi.local") and not services[1].exclusive_user(
        "@irc_x:pi.local")
    assert services[1].sender == "@ircbot:pi.local"

    # the server loads both at start-up
    async def ids() -> list[str]:
        server = HomeServer(config)
        await server.start()
        try:
            return sorted(s.id for s in server.appservices.all())
        finally:
            await server.stop()
    assert asyncio.run(ids()) == ["irc", "telegram"]


def test_new_without_config_writes_into_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert new("midi", "--url", "http://127.0.0.1:9100", "--users", "@midi_.*") == 0
    assert "app_service_config_files" in capsys.readouterr().out
    [service] = load_registrations([tmp_path / "midi.yaml"], "pi.local")
    assert service.id == "midi" and service.sender_localpart == "midi"
    # never overwrites
    assert new("midi", "--url", "http://127.0.0.1:9100", "--users", "@midi_.*") == 1
    assert "already exists" in capsys.readouterr().err


def test_new_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = generate(tmp_path / "data")
    before = config_path.read_text()
    out = str(tmp_path / "x.yaml")
    capsys.readouterr()
    assert new("bad id", "--url", "http://x", "--users", "@a", "--out", out) == 2
    assert "ID must be" in capsys.readouterr().err
    assert new("x", "--url", "ftp://x", "--users", "@a", "--out", out) == 2
    assert f"{out}: url:" in capsys.readouterr().err
    assert new("x", "--url", "http://x", "--users", "@a((", "--out", out) == 2
    assert f"{out}: namespaces.users[0].regex: invalid regex" in capsys.readouterr().err
    assert new("x", "--url", "http://x", "--users", "@a", "--sender-localpart", "a:b",
               "--out", out) == 2
    assert "sender_localpart" in capsys.readouterr().err
    assert not Path(out).exists()
    # the same id twice in one config
    assert new("dup", "--url", "http://x", "--users", "@a", "-c", str(config_path)) == 0
    assert new("dup", "--url", "http://x", "--users", "@b", "-c", str(config_path),
               "--out", out) == 2
    assert "id: 'dup' is already used by" in capsys.readouterr().err
    assert not Path(out).exists()
    assert yaml.safe_load(config_path.read_text())["app_service_config_files"] == [
        "appservices/dup.yaml"]
    assert before != config_path.read_text()
    with pytest.raises(SystemExit):  # argparse: --users is required
        new("y", "--url", "http://x")


def test_run_refuses_a_bad_registration_file(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config_path = generate(tmp_path / "data")
    reg_path = tmp_path / "data" / "bridge.yaml"
    reg_path.write_text("id: bridge\nas_token: a\nhs_token: b\nsender_localpart: bot\n"
                        "url: http://localhost:1\nnamespaces:\n  users:\n"
                        "  - regex: '@bridge_(('\n    exclusive: true\n")
    raw = yaml.safe_load(config_path.read_text())
    raw["app_service_config_files"] = ["bridge.yaml"]
    config_path.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    # exit code 2 before binding (the configured port, 1, could not be bound anyway)
    assert main(["run", "-c", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert f"configuration error: {reg_path}: namespaces.users[0].regex: invalid regex" in err
    raw["app_service_config_files"] = ["missing.yaml"]
    config_path.write_text(yaml.safe_dump(raw))
    assert main(["run", "-c", str(config_path)]) == 2
    assert f"{tmp_path / 'data' / 'missing.yaml'}: cannot read" in capsys.readouterr().err
    # register-user starts the HomeServer, which validates the files too
    assert main(["register-user", "-c", str(config_path), "alice", "--password", "pw"]) == 2
    assert "missing.yaml: cannot read" in capsys.readouterr().err
