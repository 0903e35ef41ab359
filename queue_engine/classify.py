"""Classification of SMTP replies into failure categories and pause reasons.

The rules are data (`reply_rules.toml`, which documents every decision), loaded
and compiled once, read in file order: the first rule whose conditions all hold
decides. The file puts provider wording first, then enhanced status codes
(RFC 3463 and the IANA registry), then bare reply codes; a reply nothing
matches is `other`.

A rule's conditions, all of which must hold:

- `phrases`: any one of these literal phrases occurs in the normalised text
  (lowercase, whitespace collapsed, SMTP line prefixes such as "550-5.7.1 " and
  bounce-report notes such as "(in reply to RCPT TO command)" removed), starting
  at the beginning of a word;
- `pattern`: a regular expression searched in the normalised text;
- `enhanced`: the enhanced status code is one of these: "5.1.1" exactly, "5.7."
  any 5.7.x, "5.7.606-649" a detail range, "none" no enhanced code at all;
- `code`: the reply code is one of these: 550, or "4xx" / "5xx" for a class.

Speed: rules are indexed so that a reply is checked only against the rules that
can match it. A phrase is keyed by its first word cut to four characters, and
a reply looks up the same key of each of its words, so a phrase whose first
word is shorter than four characters matches only where that word stands whole
("spf", not "spfcheck"). One regular expression per key tells at once whether
any of its phrases occurs at all. Rules without phrases are keyed by their
enhanced code or reply code; since they depend on the codes alone, their
verdict is worked out once per (reply code, enhanced code) pair seen. The phrase
candidates are then checked in file order against the best match so far. One
core classifies some 70,000 replies a second, 40,000 of Gmail's 300-character
ones (bench/classify_replies.py); the target is 20,000.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from queue_engine.statuses import Category, PauseReason

RULES_FILE = Path(__file__).parent / "reply_rules.toml"

KEY_LENGTH = 4
"""Phrases are indexed by this many leading characters of their first word."""
MIN_PHRASE = 3

_ENHANCED = re.compile(r"(?<![\w.])([245])\.([0-7])\.(\d{1,3})(?!\w|\.\d)")
# A reply code quoted inside a bounce report: a 2xx/4xx/5xx number standing alone,
# followed by an enhanced code ("550 5.1.1") or after "said:", "returned '", ">:".
_CODE_CANDIDATE = re.compile(r"(?<![\w.\-:/=#])([245]\d\d)(?=[\s-]|$)")
_ENHANCED_AFTER = re.compile(r"[ -][245]\.\d{1,3}\.\d{1,3}\b")
_CODE_CUE = re.compile(r"(?:[:=>]|said|returned)\s*['\"(]?$", re.IGNORECASE)
_REPLY_CODE = re.compile(r"^\W{0,8}(?:smtp;\s*)?([245]\d\d)(?:[ \t-]|$)", re.IGNORECASE)
# Line prefixes ("550-5.7.1 ", "550 ", "5.7.1 ") at the start of every line, and
# the "550-5.7.1 " continuations that bounce reports leave inside one line.
_LINE_PREFIX = re.compile(
    r"(?m)^[ \t>]*(?:[245]\d\d(?:[ \t-]+|$))?(?:[245]\.\d{1,3}\.\d{1,3}[ \t]+)?"
)
_LEAD = re.compile(r"[ \t>]*(?:[245]\d\d(?:[ \t-]+|$))?(?:[245]\.\d{1,3}\.\d{1,3}[ \t]+)?")
_INLINE_CONTINUATION = re.compile(
    r"[245]\d\d-(?<![\w.\-][245]\d\d-)(?:[245]\.\d{1,3}\.\d{1,3}[ \t]+)?"
)
_COMMAND_NOTE = re.compile(
    r"\(?in reply to (?:mail from|rcpt to|end of data|data|rset|helo|ehlo|starttls|auth|quit)"
    r"[^)\n]{0,20}\)?|\bafter (?:mail from|rcpt to|end of data|data|initial connection)"
    r":?(?:<[^>\n]{0,300}>)?[^:\n]{0,40}:"
)
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "`": "'"})
_WORD_KEYS = re.compile(rf"\b\w{{1,{KEY_LENGTH}}}", re.ASCII)

RULE_KEYS = frozenset({"name", "provider", "note", "phrases", "pattern", "enhanced", "code"})
RULE_KEYS |= {"category", "pause_reason"}


_UNKNOWN = object()


class RuleError(ValueError):
    """reply_rules.toml has a rule that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Classification:
    category: Category
    permanent: bool
    enhanced_status: str | None
    pause_reason: PauseReason | None = None
    rule: str | None = None
    """Name of the rule that decided (None: nothing matched, `other` by default)."""
    code: int | None = None
    """The reply code used: the one given, else the one read from the text."""


@dataclass(frozen=True, slots=True)
class EnhancedSpec:
    """One accepted enhanced status code: exact, a "5.7." prefix, a "5.7.606-649" range, or none."""

    text: str
    exact: str | None = None
    prefix: str | None = None
    low: int = 0
    high: int = 999
    none: bool = False

    @classmethod
    def parse(cls, text: str) -> EnhancedSpec:
        if text == "none":
            return cls(text, none=True)
        m = re.fullmatch(r"([245x])\.(\d{1,3})\.(?:(\d{1,3})(?:-(\d{1,3}))?)?", text)
        if m is None:
            raise ValueError(f"bad enhanced status code {text!r}")
        klass, subject, low, high = m.groups()
        if low is None:
            return cls(text, prefix=f"{klass}.{subject}.")
        if high is None:
            return cls(text, exact=text)
        if int(low) > int(high):
            raise ValueError(f"empty range {text!r}")
        return cls(text, prefix=f"{klass}.{subject}.", low=int(low), high=int(high))

    def matches(self, enhanced: str | None) -> bool:
        if self.none:
            return enhanced is None
        if enhanced is None:
            return False
        if self.exact is not None:
            return _same_code(self.exact, enhanced)
        prefix = self.prefix or ""
        if not _same_code(prefix, enhanced[: len(prefix)]):
            return False
        if self.low == 0 and self.high == 999:
            return True
        detail = enhanced[len(prefix) :]
        return detail.isdigit() and self.low <= int(detail) <= self.high


def _same_code(spec: str, code: str) -> bool:
    """`spec` may start with "x." (either class): "x.7.1" matches 4.7.1 and 5.7.1."""
    if spec.startswith("x."):
        return code[1:] == spec[1:] and code[:1] in ("4", "5")
    return code == spec


@dataclass(frozen=True, slots=True)
class Rule:
    index: int
    name: str
    category: Category
    pause_reason: PauseReason | None = None
    phrases: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    enhanced: tuple[EnhancedSpec, ...] | None = None
    code: tuple[int, ...] | None = None
    """Reply codes; 4 or 5 alone stand for a whole class ("4xx", "5xx")."""
    provider: str = ""

    def matches(self, code: int, enhanced: str | None, text: str) -> bool:
        """Whether every condition holds; `text` is normalised (see `normalise`)."""
        if self.phrases and not any(p in text for p in self.phrases):
            return False
        return self.matches_besides_phrases(code, enhanced, text)

    def matches_besides_phrases(self, code: int, enhanced: str | None, text: str) -> bool:
        if self.code is not None and code not in self.code and code // 100 not in self.code:
            return False
        if self.enhanced is not None and not any(e.matches(enhanced) for e in self.enhanced):
            return False
        return self.pattern is None or self.pattern.search(text) is not None


class RuleSet:
    """The compiled rules with their lookup indexes."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        by_key: dict[str, list[tuple[Rule, tuple[str, ...]]]] = {}
        self._by_enhanced: dict[tuple[str, str], list[Rule]] = {}
        self._by_code: dict[int, list[Rule]] = {}
        self._always: list[Rule] = []
        for rule in self.rules:
            if rule.phrases:
                keyed: dict[str, list[str]] = {}
                for phrase in rule.phrases:
                    keyed.setdefault(phrase_key(phrase), []).append(phrase)
                for key, phrases in keyed.items():
                    by_key.setdefault(key, []).append((rule, tuple(phrases)))
            elif rule.pattern is not None:
                self._always.append(rule)  # its pattern needs the text
            elif rule.enhanced is not None:
                for spec in rule.enhanced:
                    for spec_key in _spec_keys(spec):
                        self._by_enhanced.setdefault(spec_key, []).append(rule)
            elif rule.code is not None:
                for c in rule.code:
                    self._by_code.setdefault(c, []).append(rule)
            else:
                self._always.append(rule)
        # Per key: one regular expression that finds any of its phrases (a quick
        # "none of them" for the common case), then its rules in file order.
        self._by_key: dict[str, tuple[re.Pattern[str] | None, list[tuple[Rule, tuple[str, ...]]]]]
        self._by_key = {}
        for key, entries in by_key.items():
            phrases = sorted({p for _, ps in entries for p in ps}, key=len, reverse=True)
            anyof = re.compile("|".join(map(re.escape, phrases))) if len(phrases) > 2 else None
            self._by_key[key] = (anyof, entries)
        self._keys = frozenset(self._by_key)
        self._coded_memo: dict[tuple[int, str | None], Rule | object | None] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __getitem__(self, index: int) -> Rule:
        return self.rules[index]

    @property
    def unindexed(self) -> tuple[Rule, ...]:
        """Rules checked against every reply (a pattern but no phrases): keep them few."""
        return tuple(self._always)

    def first_coded(self, code: int, enhanced: str | None) -> Rule | None:
        """The first rule without phrases or pattern that matches: it depends on the
        codes alone, so it is worked out once per (code, enhanced code) seen."""
        found = self._coded_memo.get((code, enhanced), _UNKNOWN)
        if found is _UNKNOWN:
            found = None
            candidates: list[Rule] = []
            if enhanced is None:
                candidates += self._by_enhanced.get(("none", ""), ())
            else:
                subject = enhanced[: enhanced.index(".", 2) + 1]
                for key in (
                    ("exact", enhanced),
                    ("exact", "x" + enhanced[1:]),
                    ("prefix", subject),
                    ("prefix", "x" + subject[1:]),
                ):
                    candidates += self._by_enhanced.get(key, ())
            candidates += self._by_code.get(code, ())
            candidates += self._by_code.get(code // 100, ())
            for rule in sorted(candidates, key=lambda r: r.index):
                if rule.matches(code, enhanced, ""):
                    found = rule
                    break
            if len(self._coded_memo) > 4096:
                self._coded_memo.clear()
            self._coded_memo[(code, enhanced)] = found
        return found  # type: ignore[return-value]

    def first_match(self, code: int, enhanced: str | None, text: str) -> Rule | None:
        """The first rule in file order that matches; `text` is normalised."""
        # Codes first (a look-up): they bound the phrase rules worth checking.
        best = self.first_coded(code, enhanced)
        best_index = len(self.rules) if best is None else best.index
        for rule in self._always:
            if rule.index >= best_index:
                break
            if rule.matches(code, enhanced, text):
                best, best_index = rule, rule.index
                break

        by_key = self._by_key
        for key in self._keys.intersection(_WORD_KEYS.findall(text)):
            anyof, entries = by_key[key]
            if entries[0][0].index >= best_index:
                continue
            if anyof is not None and anyof.search(text) is None:
                continue
            for rule, phrases in entries:
                if rule.index >= best_index:
                    break
                for phrase in phrases:
                    if phrase in text:
                        if rule.matches_besides_phrases(code, enhanced, text):
                            best, best_index = rule, rule.index
                        break
                if best is rule:
                    break
        return best


def phrase_key(phrase: str) -> str:
    """The index key of a phrase: the first KEY_LENGTH characters of its first word."""
    m = _WORD_KEYS.match(phrase)
    return m.group() if m else phrase[:KEY_LENGTH]


def _spec_keys(spec: EnhancedSpec) -> list[tuple[str, str]]:
    if spec.none:
        return [("none", "")]
    if spec.exact is not None:
        return [("exact", spec.exact)]
    return [("prefix", spec.prefix or "")]


def enhanced_status(text: str) -> str | None:
    """The enhanced status code of a reply (RFC 3463), preferring a specific one to X.0.0."""
    found = None
    for m in _ENHANCED.finditer(text[:2000]):
        code = ".".join(m.groups())
        if not code.endswith(".0.0"):
            return code
        found = found or code
    return found


def reply_code(text: str) -> int | None:
    """The reply code of a reply text: at its start ("550 5.1.1 ...", "smtp; 550 ..."), or
    quoted in a bounce report ("host mx.example[192.0.2.1] said: 550 5.1.1 ...")."""
    m = _REPLY_CODE.match(text)
    if m is not None:
        return int(m.group(1))
    for m in _CODE_CANDIDATE.finditer(text, 0, 2000):
        start = m.start()
        if _ENHANCED_AFTER.match(text, m.end()) or _CODE_CUE.search(
            text, max(0, start - 16), start
        ):
            return int(m.group(1))
    return None


def parse_reply(text: str) -> tuple[int | None, str]:
    """Split "550 5.1.1 No such user" into (550, "5.1.1 No such user"); (None, text) if no code."""
    m = _REPLY_CODE.match(text)
    if m is None:
        return None, text
    return int(m.group(1)), text[m.end() :].lstrip(" \t-")


def normalise(text: str) -> str:
    """Lowercase, one space between words, SMTP line prefixes and curly quotes gone."""
    if "\n" in text:
        text = _LINE_PREFIX.sub("", text)
    else:
        lead = _LEAD.match(text)  # always matches, perhaps nothing
        text = text[lead.end() :] if lead else text
    if "-" in text:
        text = _INLINE_CONTINUATION.sub("", text)
    if not text.isascii() or "`" in text:
        text = text.translate(_QUOTES)
    text = text.lower()
    if "in reply to" in text or "after " in text:
        # Bounce reports name the SMTP command ("in reply to MAIL FROM command"): its
        # words are no part of what the MP said.
        text = _COMMAND_NOTE.sub(" ", text)
    return " ".join(text.split())


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _codes(raw: Any, where: str) -> tuple[int, ...]:
    codes: list[int] = []
    for value in _as_list(raw):
        if isinstance(value, str) and re.fullmatch(r"[245]xx", value):
            codes.append(int(value[0]))
        elif isinstance(value, int) and not isinstance(value, bool) and 200 <= value <= 599:
            codes.append(value)
        else:
            raise RuleError(f"{where}: bad code {value!r} (a reply code or '4xx'/'5xx')")
    return tuple(codes)


def compile_rule(index: int, raw: dict[str, Any], where: str) -> Rule:
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown keys {sorted(unknown)}")
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise RuleError(f"{where}: needs a name")
    where = f"{where} ({raw['name']})"
    if not ({"phrases", "pattern", "enhanced", "code"} & set(raw)):
        raise RuleError(f"{where}: needs phrases, pattern, enhanced or code")
    try:
        category = Category(str(raw.get("category")))
    except ValueError:
        raise RuleError(f"{where}: bad category {raw.get('category')!r}") from None
    pause = raw.get("pause_reason")
    try:
        pause_reason = None if pause is None else PauseReason(pause)
    except ValueError:
        raise RuleError(f"{where}: bad pause_reason {pause!r}") from None
    if pause_reason is PauseReason.MANUAL:
        raise RuleError(f"{where}: 'manual' is for people, not for MP replies")
    phrases = tuple(_as_list(raw.get("phrases", [])))
    for phrase in phrases:
        if not isinstance(phrase, str) or len(phrase) < MIN_PHRASE:
            raise RuleError(f"{where}: phrase {phrase!r} shorter than {MIN_PHRASE} characters")
        if phrase != normalise(phrase) or not (phrase[0].isascii() and phrase[0].isalnum()):
            raise RuleError(
                f"{where}: phrase {phrase!r} must be lowercase, single-spaced, "
                "and start with a letter or digit (ASCII)"
            )
    pattern = None
    if "pattern" in raw:
        if not isinstance(raw["pattern"], str) or raw["pattern"] != raw["pattern"].lower():
            raise RuleError(f"{where}: pattern must be a lowercase string")
        try:
            pattern = re.compile(raw["pattern"])
        except re.error as exc:
            raise RuleError(f"{where}: pattern does not compile: {exc}") from None
    enhanced = None
    if "enhanced" in raw:
        try:
            enhanced = tuple(EnhancedSpec.parse(v) for v in _as_list(raw["enhanced"]))
        except (ValueError, TypeError) as exc:
            raise RuleError(f"{where}: {exc}") from None
    code = _codes(raw["code"], where) if "code" in raw else None
    return Rule(
        index=index,
        name=raw["name"],
        category=category,
        pause_reason=pause_reason,
        phrases=phrases,
        pattern=pattern,
        enhanced=enhanced,
        code=code,
        provider=str(raw.get("provider", "")),
    )


def compile_rules(text: str, source: str = RULES_FILE.name) -> RuleSet:
    data = tomllib.loads(text)
    raws = data.get("rule")
    if not isinstance(raws, list) or not raws:
        raise RuleError(f"{source}: no [[rule]] tables")
    rules = [compile_rule(i, raw, f"{source}: rule {i + 1}") for i, raw in enumerate(raws)]
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuleError(f"{source}: duplicate rule names {duplicates}")
    return RuleSet(rules)


_DEFAULT_RULES: list[RuleSet] = []


def _default_rules() -> RuleSet:
    _DEFAULT_RULES.append(load_rules())
    return _DEFAULT_RULES[0]


def load_rules(path: Path | None = None) -> RuleSet:
    """The compiled rules of `path` (default: reply_rules.toml), read once per path."""
    return _load_rules(Path(path) if path is not None else RULES_FILE)


@cache
def _load_rules(path: Path) -> RuleSet:
    return compile_rules(path.read_text(encoding="utf-8"), path.name)


def classify_reply(code: int | None, text: str, rules: RuleSet | None = None) -> Classification:
    """Classify an MP's reply: its code and its text (with or without the code in front).

    `code` may be 0 or None when only the text is known: it is then read from the
    text. `permanent` is the reply's own word (5xx); a throttle an MP sends as 5xx
    (QQ's "550 Ip frequency limited") is permanent *and* has a `pause_reason`:
    callers pause on it rather than failing the email.
    """
    if rules is None:
        rules = _DEFAULT_RULES[0] if _DEFAULT_RULES else _default_rules()
    if not isinstance(code, int) or not 200 <= code <= 599:
        code = reply_code(text) or 0
    enhanced = enhanced_status(text)
    # Without a reply code the enhanced code's class says it (5.x.x: permanent).
    permanent = enhanced.startswith("5") if code == 0 and enhanced is not None else code >= 500
    rule = rules.first_match(code, enhanced, normalise(text[:4000]))
    if rule is None:
        return Classification(Category.OTHER, permanent, enhanced, code=code or None)
    return Classification(
        rule.category, permanent, enhanced, rule.pause_reason, rule.name, code or None
    )
