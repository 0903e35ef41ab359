"""The first reply classification, fed with real MP wording."""

from __future__ import annotations

import pytest

from queue_engine.classify import classify_reply, load_rules
from queue_engine.statuses import Category


def test_rules_file_loads_and_every_rule_has_a_condition():
    rules = load_rules()
    assert rules
    assert all(r.pattern or r.enhanced or r.code for r in rules)


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
