"""`mailpulse classify` as operators and the evaluation run it: a real process, CONTRACT lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
KEYS = [
    "source",
    "kind",
    "recipient",
    "smtp_code",
    "enhanced_status",
    "diagnostic",
    "category",
    "permanent",
    "pause_reason",
    "feedback_type",
]


def classify(
    tmp_path: Path, *args: str, stdin: bytes | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    env = {
        **os.environ,
        # Nothing but parsing: a data dir it must not touch, a Redis that does not exist,
        # and a setting that would stop `run` (classify reads no settings).
        "MAILPULSE_DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "MAILPULSE_HTTP_PORT": "not-a-port",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "classify", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    for line in lines:
        assert list(line) == KEYS
    assert not (tmp_path / "data").exists(), "classify must not start the embedded Redis"
    return proc.returncode, lines, proc.stderr.decode()


def test_reply(tmp_path: Path) -> None:
    code, lines, _ = classify(
        tmp_path, "--reply", "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown"
    )
    assert code == 0
    assert lines == [
        {
            "source": "--reply",
            "kind": "reply",
            "recipient": None,
            "smtp_code": 550,
            "enhanced_status": "5.1.1",
            "diagnostic": "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown",
            "category": "address_not_exist",
            "permanent": True,
            "pause_reason": None,
            "feedback_type": None,
        }
    ]


def test_replies_file(tmp_path: Path) -> None:
    replies = tmp_path / "replies.txt"
    replies.write_text(
        "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating"
        " from your IP address\n"
        "\n"
        "552 5.2.2 The email account that you tried to reach is over quota\n"
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org\n"
        "250 2.0.0 OK\n"
    )
    code, lines, _ = classify(tmp_path, "--replies", str(replies))
    assert code == 0
    got = [
        (x["source"], x["smtp_code"], x["category"], x["permanent"], x["pause_reason"])
        for x in lines
    ]
    assert got == [
        (f"{replies}:1", 421, "other", False, "ip_quota"),
        (f"{replies}:3", 552, "other", True, None),
        (f"{replies}:4", 554, "ip_domain_rejected", True, None),
        (f"{replies}:5", 250, None, False, None),
    ]
    assert all(x["kind"] == "reply" for x in lines)


def test_replies_from_stdin(tmp_path: Path) -> None:
    code, lines, _ = classify(tmp_path, "--replies", "-", stdin=b"550 5.1.1 no such user\n")
    assert code == 0 and [(x["source"], x["category"]) for x in lines] == [
        ("-:1", "address_not_exist")
    ]


def test_emails(tmp_path: Path) -> None:
    files = [
        CORPUS / "postfix_dsn_two_recipients.eml",
        CORPUS / "arf_yahoo_cfl_abuse.eml",
        CORPUS / "autoreply_rfc3834_out_of_office.eml",
        CORPUS / "unknown_binary_garbage.eml",
    ]
    code, lines, _ = classify(tmp_path, *map(str, files))
    assert code == 0
    got = [
        (Path(x["source"]).name, x["kind"], x["recipient"], x["category"], x["feedback_type"])
        for x in lines
    ]
    assert got == [
        ("postfix_dsn_two_recipients.eml", "dsn", "alice@example.net", "address_not_exist", None),
        ("postfix_dsn_two_recipients.eml", "dsn", "bob@example.net", "other", None),
        ("arf_yahoo_cfl_abuse.eml", "arf", "amelia@yahoo.example", None, "abuse"),
        ("autoreply_rfc3834_out_of_office.eml", "autoreply", "gina.miller@example.org", None, None),
        ("unknown_binary_garbage.eml", "unknown", None, None, None),
    ]


def test_email_from_stdin_and_a_missing_file(tmp_path: Path) -> None:
    raw = (CORPUS / "qmail_remote_user_unknown.eml").read_bytes()
    code, lines, err = classify(tmp_path, "-", str(tmp_path / "missing.eml"), stdin=raw)
    assert code == 1 and "missing.eml" in err
    assert [(x["source"], x["kind"], x["smtp_code"]) for x in lines] == [("-", "dsn", 550)]


@pytest.mark.parametrize("args", [[], ["--reply", "550 x", "a.eml"]])
def test_usage_errors(tmp_path: Path, args: list[str]) -> None:
    code, lines, err = classify(tmp_path, *args)
    assert code == 2 and not lines and "classify" in err
