"""TURN credentials (coturn use-auth-secret) and the TURN config keys.

https://spec.matrix.org/v1.19/client-server-api/#voice-over-ip
"""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from edgehs.config import ConfigError, load_config
from edgehs.service.voip import TurnService, turn_password

URIS = ("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp")


def coturn_accepts(secret: str, username: str, password: str, now: float) -> bool:
    """coturn's check for a REST-API (use-auth-secret) user: the username's timestamp part is
    still in the future and the password is base64(HMAC-SHA1(static-auth-secret, username)),
    computed here with the openssl command coturn's documentation gives."""
    expiry, _, _ = username.partition(":")
    if not expiry.isdigit() or int(expiry) <= now:
        return False
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    digest = subprocess.run([openssl, "dgst", "-binary", "-sha1", "-hmac", secret],
                            input=username.encode(), capture_output=True, check=True).stdout
    expected = subprocess.run([openssl, "base64"], input=digest, capture_output=True,
                              check=True).stdout.decode().strip()
    return expected == password


def test_shared_secret_credentials_validate_like_coturn() -> None:
    now = 1_700_000_000.0
    turn = TurnService(URIS, "north-secret", None, None, 86_400_000, clock=lambda: now)
    creds = turn.credentials("@alice:home.lan")
    assert creds["uris"] == list(URIS) and creds["ttl"] == 86400
    assert creds["username"] == f"{int(now) + 86400}:@alice:home.lan"
    assert coturn_accepts("north-secret", creds["username"], creds["password"], now)
    assert not coturn_accepts("other-secret", creds["username"], creds["password"], now)
    # Expired a day later.
    assert not coturn_accepts("north-secret", creds["username"], creds["password"],
                              now + 86401)
    # A known answer (from the openssl command), so the algorithm cannot drift unnoticed.
    assert turn_password("north", "1433895918506:my_username") == \
        "Gx/rOncp1ZXBdeBo0S3RrYQnHDA="  # openssl dgst -sha1 -hmac north


def test_static_credentials_and_unconfigured() -> None:
    static = TurnService(URIS, None, "user", "pass", 3_600_000)
    assert static.credentials("@a:b") == {"username": "user", "password": "pass",
                                          "uris": list(URIS), "ttl": 3600}
    assert TurnService((), "secret", None, None, 1000).credentials("@a:b") == {}
    assert TurnService(URIS, None, None, None, 1000).credentials("@a:b") == {}


def write(tmp_path: Path, **extra: object) -> Path:
    path = tmp_path / "edgehs.yaml"
    path.write_text(yaml.safe_dump({"server_name": "home.lan", **extra}))
    return path


def test_config_keys(tmp_path: Path) -> None:
    config = load_config(write(tmp_path))
    assert config.turn_uris == () and config.turn_shared_secret is None
    assert config.turn_user_lifetime_ms == 86_400_000 and config.presence_enabled is True
    config = load_config(write(tmp_path, turn_uris=list(URIS), turn_shared_secret="s",
                               turn_user_lifetime="12h", presence_enabled=False))
    assert config.turn_uris == URIS and config.turn_shared_secret == "s"
    assert config.turn_user_lifetime_ms == 12 * 3_600_000 and not config.presence_enabled
    assert load_config(write(tmp_path, turn_user_lifetime=60000)).turn_user_lifetime_ms == 60000


@pytest.mark.parametrize(("key", "value"), [
    ("turn_uris", "turn:x"), ("turn_uris", ["http://x"]), ("turn_shared_secret", 5),
    ("turn_user_lifetime", "soon"), ("turn_user_lifetime", 0), ("presence_enabled", "yes"),
])
def test_bad_config(tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(write(tmp_path, **{key: value}))
