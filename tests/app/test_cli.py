"""The `mailpulse` command as users run it: real processes on a fresh data dir, no mocks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis
from processes import base_env, embedded_state, redis_servers_in, wait_until

from app.process import pid_alive
from queue_engine import keys

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "app.cli"]
T = TypeVar("T")

ACCOUNT_KEYS = {"account", "email", "password", "account_key"}
API_USER_KEYS = {"account", "api_user", "api_key", "type"}


def mailpulse(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_json_object(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    return value


def no_embedded_redis_left(data_dir: Path) -> None:
    state = embedded_state(data_dir)
    assert state is None or not pid_alive(state["pid"]), state
    assert redis_servers_in(data_dir / "redis") == []


@contextlib.contextmanager
def background(env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A long-running command in its own session; its whole group is killed on the way out."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*CLI, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def wait_healthy(env: dict[str, str], proc: subprocess.Popen[str], log: Path) -> str:
    base_url = f"http://127.0.0.1:{env['MAILPULSE_HTTP_PORT']}"

    def healthy() -> bool:
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()}"
        try:
            return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 30, "GET /healthz 200")
    return base_url


def stop(proc: subprocess.Popen[Any], log: Path, sig: signal.Signals = signal.SIGINT) -> None:
    """Ctrl-C (or sig): the command shuts down, its own Redis included, with status 0."""
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running 15s after SIGINT:\n{log.read_text()}") from None
    assert code == 0, (code, log.read_text())


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


# -- tests ---------------------------------------------------------------------------------


def test_account_and_api_user_create_print_the_contract_json(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = base_env(data_dir)

    # The installed console script, as the README shows it.
    script = Path(sys.executable).with_name("mailpulse")
    assert script.exists(), script
    result = subprocess.run(
        [str(script), "account", "create", "acme", "--email", "admin@acme.example", "--json"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    account = one_json_object(result)
    assert set(account) == ACCOUNT_KEYS
    assert account["account"] == "acme"
    assert account["email"] == "admin@acme.example"
    assert isinstance(account["password"], str) and len(account["password"]) >= 12
    assert isinstance(account["account_key"], str) and len(account["account_key"]) >= 32
    no_embedded_redis_left(data_dir)

    api_user = one_json_object(
        mailpulse(env, "api-user", "create", "acme", "acme-tx", "--type", "marketing", "--json")
    )
    assert set(api_user) == API_USER_KEYS
    assert api_user["account"] == "acme"
    assert api_user["api_user"] == "acme-tx"
    assert api_user["type"] == "marketing"
    assert isinstance(api_user["api_key"], str) and len(api_user["api_key"]) >= 32
    assert api_user["api_key"] != account["account_key"]
    no_embedded_redis_left(data_dir)
    # The data is kept: the AOF holds the account, and only hashes of the secrets.
    aof = b"".join(p.read_bytes() for p in (data_dir / "redis").rglob("*.aof*") if p.is_file())
    assert b"acme-tx" in aof
    assert account["account_key"].encode() not in aof
    assert api_user["api_key"].encode() not in aof
    assert account["password"].encode() not in aof

    again = mailpulse(env, "account", "create", "acme", "--email", "other@acme.example")
    assert again.returncode == 2
    assert again.stdout == ""
    assert "acme" in again.stderr and "already exists" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr

    missing = mailpulse(env, "api-user", "create", "nobody", "nobody-tx", "--json")
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert "nobody" in missing.stderr and "does not exist" in missing.stderr, missing.stderr

    for command in (
        ["account", "create", "Bad Name!", "--email", "x@acme.example"],
        ["api-user", "create", "acme", "Bad Name!"],
    ):
        bad = mailpulse(env, *command)
        assert bad.returncode == 2, bad
        assert bad.stdout == ""
        assert "'Bad Name!'" in bad.stderr and "must be" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr

    no_embedded_redis_left(data_dir)


def test_created_credentials_work_against_the_web_api(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = base_env(data_dir)
    account = one_json_object(
        mailpulse(env, "account", "create", "acme", "--email", "admin@acme.example", "--json")
    )
    api_user = one_json_object(mailpulse(env, "api-user", "create", "acme", "acme-tx", "--json"))
    assert api_user["type"] == "transactional"

    log = tmp_path / "web.log"
    with background(env, log, "web") as proc:
        base_url = wait_healthy(env, proc, log)
        with httpx.Client(base_url=base_url, timeout=10) as client:
            sent = client.post(
                "/v1/mail/send",
                json={
                    "from": "shop@acme.example",
                    "to": ["someone@example.com"],
                    "subject": "Hi",
                    "text": "Hello",
                },
                auth=(api_user["api_user"], api_user["api_key"]),
            )
            assert sent.status_code == 202, sent.text
            (email_id,) = sent.json()["email_ids"]

            wrong = client.get("/v1/emails", auth=(api_user["api_user"], "mpk_wrong"))
            assert wrong.status_code == 401, wrong.text

            listed = client.get(
                "/v1/emails", headers={"authorization": f"Bearer {account['account_key']}"}
            )
            assert listed.status_code == 200, listed.text
            items = listed.json()["items"]
            assert [item["email_id"] for item in items] == [email_id]
            assert items[0]["api_user"] == "acme-tx"
            assert items[0]["recipient"] == "someone@example.com"
            assert items[0]["type"] == "transactional"
        stop(proc, log, signal.SIGTERM)
    # A clean stop, not PDEATHSIG: the server is gone and so is its state file.
    assert not (data_dir / "redis" / "embedded.json").exists()
    no_embedded_redis_left(data_dir)


def test_account_create_reuses_the_redis_of_a_running_system(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = base_env(data_dir)
    log = tmp_path / "run.log"
    with background(env, log, "run") as proc:
        wait_until(
            lambda: "mailpulse is running" in log.read_text() or proc.poll() is not None,
            30,
            "the banner of `mailpulse run`",
        )
        assert proc.poll() is None, log.read_text()
        state = embedded_state(data_dir)
        assert state is not None and state["owner_pid"] == proc.pid
        redis_pid = state["pid"]

        created = one_json_object(
            mailpulse(env, "account", "create", "acme", "--email", "admin@acme.example", "--json")
        )
        assert created["account"] == "acme"

        after = embedded_state(data_dir)
        assert after is not None and after["pid"] == redis_pid and after["url"] == state["url"]
        assert pid_alive(redis_pid)
        assert redis_servers_in(data_dir / "redis") == [redis_pid]
        with redis.Redis.from_url(state["url"], decode_responses=True) as client:
            assert client.hget(keys.account("acme"), "email") == "admin@acme.example"
        assert proc.poll() is None
        stop(proc, log)
    no_embedded_redis_left(data_dir)


@pytest.mark.parametrize(
    ("variable", "value", "needles"),
    [
        ("MAILPULSE_HTTP_PORT", "abc", ["MAILPULSE_HTTP_PORT", "'abc'"]),
        ("MAILPULSE_SMTP_PORT", "70000", ["MAILPULSE_SMTP_PORT", "port"]),
        ("MAILPULSE_RETRY_BASE_SECONDS", "-1", ["MAILPULSE_RETRY_BASE_SECONDS", "positive"]),
        ("MAILPULSE_LOG_LEVEL", "LOUD", ["MAILPULSE_LOG_LEVEL", "'LOUD'"]),
        ("MAILPULSE_REDIS_SERVER", "/nonexistent", ["MAILPULSE_REDIS_SERVER", "/nonexistent"]),
        ("MAILPULSE_ROUTES", "{routes}", ["{routes}", '"gmail.example"', "port"]),
    ],
)
def test_a_bad_setting_stops_start_up_naming_it(
    tmp_path: Path, variable: str, value: str, needles: list[str]
) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text('[routes]\n"*" = "127.0.0.1:2600"\n"gmail.example" = "127.0.0.1:99999"\n')
    value = value.format(routes=routes)
    data_dir = tmp_path / "data"
    env = base_env(data_dir, **{variable: value})
    log = tmp_path / "run.log"
    with background(env, log, "run", "--demo") as proc:
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"`run` did not stop on {variable}={value}") from None
    output = log.read_text()
    assert code == 2, output
    message = last_line(output)
    for needle in (n.format(routes=routes) for n in needles):
        assert needle in message, (needle, output)
    assert "Traceback" not in output
    assert "mailpulse is running" not in output
    # Nothing was started: no Redis, no demo account.
    assert not (data_dir / "redis").exists()
    assert not (data_dir / "demo.json").exists()

    # The one-shot commands read the same settings and refuse the same way.
    result = mailpulse(env, "account", "create", "acme", "--email", "admin@acme.example")
    assert result.returncode == 2
    assert result.stdout == ""
    assert needles[0].format(routes=routes) in result.stderr, result.stderr
    assert not (data_dir / "redis").exists()
