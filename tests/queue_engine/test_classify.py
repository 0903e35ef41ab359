"""The first reply classification, fed with real MP wording."""

from __future__ import annotations

import pytest

from queue_engine.classify import classify_reply, load_rules
from queue_engine.statuses import Category


def test_rules_file_loads_and_every_rule_has_a_condition():
    rules = load_rules()
    assert rules
    assert all(r.phrases or r.pattern or r.enhanced or r.code for r in rules)


@pytest.mark.parametrize(
    ("code", "text", "category"),
    [
        (
            550,
            "5.1.1 The email account that you tried to reach does not exist.",
            "address_not_exist",
        ),
        (550, "5.5.0 Requested action not taken: mailbox unavailable", "address_not_exist"),
        (550, "Mailbox not found or access denied", "address_not_exist"),
        (554, "5.7.1 Message rejected as spam by Content Filtering.", "spam"),
        (553, "5.1.3 Invalid address", "address_format_error"),
        (556, "5.1.10 Recipient address has null MX", "server_unreachable"),
        (550, "5.7.606 Access denied, banned sending IP [192.0.2.1]", "ip_domain_rejected"),
        (552, "5.2.2 Mailbox full", "other"),
    ],
)
def test_replies(code: int, text: str, category: str) -> None:
    result = classify_reply(code, text)
    assert result.category == Category(category)
    assert result.permanent


def test_enhanced_code_is_extracted_and_4xx_is_temporary():
    result = classify_reply(421, "4.7.0 Try again later")
    assert result.enhanced_status == "4.7.0"
    assert not result.permanent


# Every enhanced status code of the IANA registry (RFC 3463 and later), alone with
# neutral wording: the category it must get. This is the decision table of
# reply_rules.toml section 3/5 in one place.
REGISTRY = {
    "5.1.0": "address_not_exist",
    "5.1.1": "address_not_exist",
    "5.1.2": "server_unreachable",
    "5.1.3": "address_format_error",
    "5.1.4": "other",
    "5.1.6": "address_not_exist",
    "5.1.7": "sender_recipient_rejected",
    "5.1.8": "sender_recipient_rejected",
    "5.1.9": "other",
    "5.1.10": "server_unreachable",
    "5.2.0": "other",
    "5.2.1": "address_not_exist",
    "5.2.2": "other",
    "5.2.3": "other",
    "5.2.4": "other",
    "5.3.0": "service_unreachable",
    "5.3.1": "service_unreachable",
    "5.3.2": "service_unreachable",
    "5.3.3": "other",
    "5.3.4": "other",
    "5.3.5": "service_unreachable",
    "5.4.0": "server_unreachable",
    "5.4.1": "server_unreachable",
    "5.4.2": "server_unreachable",
    "5.4.3": "server_unreachable",
    "5.4.4": "server_unreachable",
    "4.4.5": "service_unreachable",
    "5.4.6": "server_unreachable",
    "5.4.7": "server_unreachable",
    "4.4.8": "other",
    "5.5.0": "other",
    "5.5.1": "other",
    "5.5.2": "other",
    "5.5.3": "other",
    "5.5.4": "address_format_error",
    "5.5.5": "other",
    "5.5.6": "other",
    "5.6.0": "other",
    "5.6.1": "other",
    "5.6.2": "other",
    "5.6.3": "other",
    "5.6.5": "other",
    "5.6.6": "other",
    "5.6.7": "other",
    "5.6.8": "other",
    "5.6.9": "other",
    "5.7.0": "sender_recipient_rejected",
    "5.7.1": "sender_recipient_rejected",
    "5.7.2": "sender_recipient_rejected",
    "5.7.3": "sender_recipient_rejected",
    "5.7.4": "sender_recipient_rejected",
    "5.7.5": "sender_recipient_rejected",
    "5.7.6": "sender_recipient_rejected",
    "5.7.7": "sender_recipient_rejected",
    "5.7.8": "sender_recipient_rejected",
    "5.7.9": "sender_recipient_rejected",
    "5.7.10": "sender_recipient_rejected",
    "5.7.11": "sender_recipient_rejected",
    "4.7.12": "sender_recipient_rejected",
    "5.7.13": "sender_recipient_rejected",
    "5.7.14": "sender_recipient_rejected",
    "5.7.15": "other",
    "5.7.16": "other",
    "5.7.17": "address_not_exist",
    "5.7.18": "address_not_exist",
    "5.7.19": "sender_recipient_rejected",
    "5.7.20": "sender_recipient_rejected",
    "5.7.21": "sender_recipient_rejected",
    "5.7.22": "sender_recipient_rejected",
    "5.7.23": "sender_recipient_rejected",
    "5.7.24": "sender_recipient_rejected",
    "5.7.25": "ip_domain_rejected",
    "5.7.26": "sender_recipient_rejected",
    "5.7.27": "sender_recipient_rejected",
    "5.7.28": "ip_domain_rejected",
    "5.7.606": "ip_domain_rejected",
    "5.7.649": "ip_domain_rejected",
    "4.7.0": "other",
    "4.7.1": "other",
}


@pytest.mark.parametrize(("status", "category"), sorted(REGISTRY.items()))
def test_enhanced_status_registry(status: str, category: str) -> None:
    code = 550 if status.startswith("5") else 451
    result = classify_reply(code, f"{status} Error (code {status})")
    assert result.category == Category(category), result.rule
    assert result.enhanced_status == status
    assert result.pause_reason is None


@pytest.mark.parametrize(
    ("code", "text", "pause"),
    [
        (421, "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume",
         "ip_quota"),
        (421, "HL:ICC 163 mx3,abc 1716035917", "ip_connection_rate"),
        (550, "Ip frequency limited. http://service.mail.qq.com/", "ip_quota"),
        (550, "Domain frequency limited. http://service.mail.qq.com/", "domain_quota"),
        (451, "4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP"
              " reputation.", "ip_quota"),
        (450, "4.2.1 The user you are trying to contact is receiving mail too quickly.", None),
        (452, "4.2.2 The email account that you tried to reach is over quota.", None),
        (550, "Mailbox unavailable or access denied", None),
    ],
)  # fmt: skip
def test_pause_reasons(code: int, text: str, pause: str | None) -> None:
    result = classify_reply(code, text)
    assert (result.pause_reason.value if result.pause_reason else None) == pause
