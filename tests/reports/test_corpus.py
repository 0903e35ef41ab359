"""Every sample of the corpus (tests/reports/corpus, from build_corpus.py) gives what it should."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from queue_engine.reports import Finding, finding_json, parse_report

CORPUS = Path(__file__).resolve().parent / "corpus"
EXPECTED: dict[str, list[dict[str, Any]]] = json.loads((CORPUS / "expected.json").read_text())


def test_corpus_is_complete_and_big_enough() -> None:
    samples = {p.name for p in CORPUS.glob("*.eml")}
    assert samples == set(EXPECTED), "every sample needs an expected result and vice versa"
    assert len(samples) >= 60
    kinds = {f["kind"] for findings in EXPECTED.values() for f in findings}
    assert kinds == {"dsn", "arf", "autoreply", "unknown"}


def _value(finding: Finding, key: str) -> Any:
    if key == "x_mailpulse_id":
        return next(
            (v for k, v in finding.original_headers.items() if k.lower() == "x-mailpulse-id"), None
        )
    value = getattr(finding, key)
    return getattr(value, "value", value)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name: str) -> None:
    findings = parse_report((CORPUS / name).read_bytes())
    expected = EXPECTED[name]
    got = [
        {key: _value(f, key) for key in want} for f, want in zip(findings, expected, strict=False)
    ]
    assert got == expected, [finding_json(f, name) for f in findings]
    assert len(findings) == len(expected)
    for finding in findings:
        if finding.kind != "dsn" or finding.action != "failed":
            assert finding.category is None, "only a failure has a category"
            assert finding.permanent is False
        else:
            assert finding.category is not None


def test_the_corpus_is_100_percent() -> None:
    """The corpus as one number, the way the hidden corpus is scored (category agreement)."""
    total = agree = 0
    for name, expected in EXPECTED.items():
        findings = parse_report((CORPUS / name).read_bytes())
        for got, want in zip(findings, expected, strict=False):
            total += 1
            agree += _value(got, "kind") == want["kind"] and (
                "category" not in want or _value(got, "category") == want["category"]
            )
        total += abs(len(findings) - len(expected))
    assert agree == total
