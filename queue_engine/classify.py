"""A first classification of SMTP replies into failure categories.

Rules are data (`reply_rules.toml`), compiled once, read in order: the first
rule whose conditions all hold decides. Unmatched failures are `other`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from queue_engine.statuses import Category, PauseReason

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class Rule:
    category: Category
    pattern: re.Pattern[str] | None = None
    enhanced: str | None = None
    code: int | None = None
    pause_reason: PauseReason | None = None

    def matches(self, code: int, enhanced: str | None, text: str) -> bool:
        if self.code is not None and code != self.code:
            return False
        if self.pause_reason is not None and code >= 500:
            return False  # a throttle is temporary; a 5xx is the MP's final word
        if self.enhanced is not None:
            if enhanced is None:
                return False
            if self.enhanced.endswith("."):
                if not enhanced.startswith(self.enhanced):
                    return False
            elif enhanced != self.enhanced:
                return False
        return self.pattern is None or bool(self.pattern.search(text))


@dataclass(frozen=True, slots=True)
class Classification:
    category: Category
    permanent: bool
    enhanced_status: str | None
    pause_reason: PauseReason | None = None


def enhanced_status(text: str) -> str | None:
    match = _ENHANCED.search(text)
    return ".".join(match.groups()) if match else None


@cache
def load_rules(path: Path = Path(__file__).parent / "reply_rules.toml") -> tuple[Rule, ...]:
    data = tomllib.loads(path.read_text())
    rules = []
    for i, raw in enumerate(data["rule"], start=1):
        unknown = set(raw) - {"pattern", "enhanced", "code", "category", "pause_reason"}
        if unknown or "category" not in raw or len(raw) < 2:
            raise ValueError(f"{path.name}: rule {i}: needs category plus pattern/enhanced/code")
        rules.append(
            Rule(
                category=Category(raw["category"]),
                pattern=re.compile(raw["pattern"], re.IGNORECASE) if "pattern" in raw else None,
                enhanced=raw.get("enhanced"),
                code=raw.get("code"),
                pause_reason=PauseReason(raw["pause_reason"]) if "pause_reason" in raw else None,
            )
        )
    return tuple(rules)


def classify_reply(code: int, text: str) -> Classification:
    enhanced = enhanced_status(text)
    permanent = code >= 500
    for rule in load_rules():
        if rule.matches(code, enhanced, text):
            return Classification(rule.category, permanent, enhanced, rule.pause_reason)
    return Classification(Category.OTHER, permanent, enhanced)
