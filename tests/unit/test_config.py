"""Config loading: defaults, sizes, and a ConfigError naming the file and the key."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from edgehs.config import OPTIONS, ConfigError, load_config, parse_size, render_config


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "edgehs.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_minimal_config_gets_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"server_name": "example.org"}))
    assert config.server_name == "example.org"
    assert config.data_dir == tmp_path.resolve()
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 8008)
    assert config.database_path == tmp_path.resolve() / "edgehs.db"
    assert config.max_request_body_size == 1 << 20 and config.max_upload_size == 50 << 20
    assert config.default_room_version == "12" and config.enable_registration is False
    assert config.rate_limits_enabled and config.rc_message.burst_count == 50
    assert config.log_level == "INFO" and config.app_service_config_files == []
    assert config.base_url == "http://127.0.0.1:8008/"


def test_values_are_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {
        "server_name": "pi.local:8448", "data_dir": "data", "listen": "[::1]:9000",
        "public_baseurl": "https://pi.example/", "max_request_body_size": "64K",
        "max_upload_size": 1000, "default_room_version": 11, "log_level": "debug",
        "rate_limits": {"enabled": False, "message": {"per_second": 1, "burst_count": 2}},
    }))
    assert config.data_dir == (tmp_path / "data").resolve()
    assert (config.listen_host, config.listen_port) == ("::1", 9000)
    assert config.base_url == "https://pi.example/"
    assert config.max_request_body_size == 65536 and config.max_upload_size == 1000
    assert config.default_room_version == "11" and config.log_level == "DEBUG"
    assert not config.rate_limits_enabled and config.rc_message.per_second == 1.0


@pytest.mark.parametrize(("text", "size"), [
    ("1", 1), ("10K", 10240), ("10k", 10240), ("2M", 2 << 20), ("1G", 1 << 30),
    ("5MB", 5 << 20), ("5MiB", 5 << 20), (" 7 K ", 7168), (4096, 4096),
])
def test_parse_size(text: Any, size: int) -> None:
    assert parse_size(text, "max_upload_size", "f.yaml") == size


# (overrides, key the message must name)
BAD: list[tuple[dict[str, Any], str]] = [
    ({"unknown_option": 1}, "unknown_option"),
    ({"server_name": None}, "server_name"),
    ({"server_name": "bad name"}, "server_name"),
    ({"server_name": "@alice:example.org"}, "server_name"),
    ({"server_name": 5}, "server_name"),
    ({"max_request_body_size": "lots"}, "max_request_body_size"),
    ({"max_request_body_size": -1}, "max_request_body_size"),
    ({"max_request_body_size": True}, "max_request_body_size"),
    ({"max_upload_size": "1T"}, "max_upload_size"),
    ({"listen": "8008"}, "listen"),
    ({"listen": "host:99999"}, "listen"),
    ({"listen": ":8008"}, "listen"),
    ({"listen": 8008}, "listen"),
    ({"default_room_version": "13"}, "default_room_version"),
    ({"default_room_version": "0"}, "default_room_version"),
    ({"log_level": "LOUD"}, "log_level"),
    ({"enable_registration": "yes"}, "enable_registration"),
    ({"max_sync_timeout_ms": "30s"}, "max_sync_timeout_ms"),
    ({"rate_limits": []}, "rate_limits"),
    ({"rate_limits": {"message": {"per_second": "fast"}}}, "rate_limits.message"),
    ({"rate_limits": {"login": {"burst_count": 0}}}, "rate_limits.login"),
    ({"app_service_config_files": "as.yaml"}, "app_service_config_files"),
    ({"data_dir": 5}, "data_dir"),
]


@pytest.mark.parametrize("version", ["1", "6", "9"])
def test_any_stable_room_version_may_be_the_default(tmp_path: Path, version: str) -> None:
    path = write(tmp_path, {"server_name": "example.org", "default_room_version": version})
    assert load_config(path).default_room_version == version


@pytest.mark.parametrize(("overrides", "key"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_values_name_file_and_key(tmp_path: Path, overrides: dict[str, Any],
                                      key: str) -> None:
    path = write(tmp_path, {"server_name": "example.org", **overrides})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:"), message
    assert key in message, message


@pytest.mark.parametrize("text", ["server_name: [unclosed", "- a list\n- not a mapping\n"])
def test_unreadable_yaml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=str(path)):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_rendered_config_lists_every_option_and_loads(tmp_path: Path) -> None:
    text = render_config({"server_name": "example.org"})
    for key, (_default, comment) in OPTIONS.items():
        assert f"# {comment}" in text and f"\n{key}:" in text
    config = load_config(write(tmp_path, text))
    assert config.server_name == "example.org"
