"""Settings: CONTRACT defaults, README table, start-up errors, the signing key."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_contract_ones() -> None:
    settings = Settings.from_environ({})
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8025)
    assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 2525)
    assert settings.data_dir == Path("./.mailpulse")
    assert settings.redis_url is None
    assert settings.secret_key is None
    assert settings.routes_file is None
    assert settings.redis_server is None
    assert settings.dns_server is None
    assert settings.return_path_domain is None
    assert settings.trusted_proxies == ()
    assert settings.log_level == "INFO"
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.retry_base_seconds == 60
    assert settings.retry_max_seconds == 3600
    assert settings.max_age_seconds == 3 * 24 * 3600
    assert settings.retention_days == 90
    # Unset HELO name: this machine's FQDN, never empty.
    assert settings.helo_name == socket.getfqdn()
    assert settings.helo_name
    # The engine's config is built from the same values.
    config = settings.engine_config()
    assert config.retry_base_seconds == 60 and config.helo_name == settings.helo_name


def test_every_documented_default_parses_when_given_explicitly() -> None:
    explicit = {env: default for env, default, _ in Settings.documented()}
    assert Settings.from_environ(explicit) == Settings.from_environ({})


def test_values_are_parsed_and_trimmed() -> None:
    settings = Settings.from_environ(
        {
            "REDIS_URL": " redis://127.0.0.1:6390/0 ",
            "MAILPULSE_HTTP_PORT": "0",
            "MAILPULSE_LOG_LEVEL": "debug",
            "MAILPULSE_DNS_SERVER": "[::1]:5353",
            "MAILPULSE_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
            "MAILPULSE_RETURN_PATH_DOMAIN": "Bounces.Example",
            "MAILPULSE_HELO_NAME": "mx.example",
            "MAILPULSE_ROUTES": "/etc/mailpulse/routes.toml",
        }
    )
    assert settings.redis_url == "redis://127.0.0.1:6390/0"
    assert settings.http_port == 0
    assert settings.log_level == "DEBUG"
    assert settings.dns_server == ("::1", 5353)
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1"),
    )
    assert settings.return_path_domain == "bounces.example"
    assert settings.helo_name == "mx.example"
    assert settings.routes_file == Path("/etc/mailpulse/routes.toml")


def _readme_settings() -> dict[str, str]:
    """`| `VAR` | default | meaning |` rows of the README's settings table: VAR → default cell."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.match(r"\|\s*`([A-Z_]+)`\s*\|\s*([^|]*?)\s*\|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_readme_documents_every_setting_with_its_default() -> None:
    rows = _readme_settings()
    documented = Settings.documented()
    for variable, default, doc in documented:
        assert variable in rows, f"{variable} is missing from the README settings table"
        expected = f"`{default}`" if default else "(unset)"
        assert rows[variable] == expected, (variable, rows[variable], expected)
        assert doc
    # ... and documents no setting that does not exist.
    assert set(rows) == {variable for variable, _, _ in documented}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAILPULSE_HTTP_PORT", "abc"),
        ("MAILPULSE_HTTP_PORT", "65536"),
        ("MAILPULSE_SMTP_PORT", "-1"),
        ("MAILPULSE_HTTP_HOST", "local host"),
        ("MAILPULSE_HELO_NAME", "mx .example"),
        ("MAILPULSE_MAX_BODY_BYTES", "0"),
        ("MAILPULSE_BATCH_SIZE", "1.5"),
        ("MAILPULSE_LEASE_SECONDS", "many"),
        ("MAILPULSE_RETRY_BASE_SECONDS", "-1"),
        ("MAILPULSE_RETRY_MAX_SECONDS", "nan"),
        ("MAILPULSE_LEASE_SECONDS", "0"),
        ("MAILPULSE_DNS_SERVER", "8.8.8.8"),
        ("MAILPULSE_DNS_SERVER", "8.8.8.8:99999"),
        ("MAILPULSE_TRUSTED_PROXIES", "10.0.0.0/8,not-a-network"),
        ("MAILPULSE_LOG_LEVEL", "LOUD"),
        ("MAILPULSE_RETENTION_DAYS", "-7"),
    ],
)
def test_a_bad_value_raises_settings_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}="), message
    assert repr(value) in message, message


def test_signing_key_is_generated_once_private_and_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    settings = Settings.from_environ({"MAILPULSE_DATA_DIR": str(data_dir)})
    key = settings.signing_key()
    assert len(key) >= 32
    path = data_dir / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip().encode() == key
    assert settings.signing_key() == key
    # Another process start (a new Settings) reads the same key back.
    assert Settings.from_environ({"MAILPULSE_DATA_DIR": str(data_dir)}).signing_key() == key
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret.key"]
    # Another data dir gets another key.
    other = Settings.from_environ({"MAILPULSE_DATA_DIR": str(tmp_path / "other")})
    assert other.signing_key() != key


def test_processes_racing_for_the_first_key_all_end_with_the_same_one(tmp_path: Path) -> None:
    code = (
        "from app.settings import Settings; print(Settings.from_environ().signing_key().decode())"
    )
    env = {**os.environ, "MAILPULSE_DATA_DIR": str(tmp_path / "data")}
    env.pop("MAILPULSE_SECRET_KEY", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert keys == {(tmp_path / "data" / "secret.key").read_text().strip()}
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["secret.key"]


def test_secret_key_setting_overrides_the_generated_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    generated = Settings.from_environ({"MAILPULSE_DATA_DIR": str(data_dir)}).signing_key()
    configured = Settings.from_environ(
        {"MAILPULSE_DATA_DIR": str(data_dir), "MAILPULSE_SECRET_KEY": "an operator's secret"}
    )
    assert configured.signing_key() == b"an operator's secret"
    assert generated != b"an operator's secret"
    # The key file is neither used nor touched.
    assert (data_dir / "secret.key").read_text().strip().encode() == generated
    elsewhere = tmp_path / "unused"
    Settings.from_environ(
        {"MAILPULSE_DATA_DIR": str(elsewhere), "MAILPULSE_SECRET_KEY": "x"}
    ).signing_key()
    assert not elsewhere.exists()
