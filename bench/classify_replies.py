"""The reply classifier benchmark: SMTP replies classified per second on one core.

    .venv/bin/python -m bench.classify_replies [--n 200000] [--rounds 5]

Feeds queue_engine.classify.classify_reply the reply corpus of the classifier
tests (tests/classifier/replies_corpus.toml: real MP wording from Gmail to
NetEase, with its reply codes), repeated in file order to N replies, in this one
process (one core). The rules are compiled before the clock starts (a running
engine compiles them once). No reply text is cached: every reply is normalised
and matched from scratch; only the verdict of the code-only rules is kept per
(reply code, enhanced code) pair, as in a running engine (a few dozen pairs).
Each round is timed on its own and the fastest counts: on a machine shared with
other work, noise only ever slows a round.

A second line times the long replies alone (200 characters or more, as Gmail,
Outlook and Yahoo write them). Results go to stdout as one JSON object per line
({"bench", "metric", "value", "unit", ...}); progress goes to stderr. Target:
>= 20,000 replies/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from queue_engine.classify import classify_reply, load_rules

BENCH = "classify_replies"
CORPUS = Path(__file__).resolve().parent.parent / "tests" / "classifier" / "replies_corpus.toml"
TARGET_PER_S = 20_000
LONG_CHARS = 200


def log(message: str) -> None:
    print(f"[{BENCH} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


def load_replies(path: Path) -> list[tuple[int, str]]:
    samples = tomllib.loads(path.read_text(encoding="utf-8"))["reply"]
    return [(int(s["code"]), str(s["text"])) for s in samples]


def one_round(replies: list[tuple[int, str]]) -> float:
    """Seconds to classify every reply once."""
    classify = classify_reply
    start = time.perf_counter()
    for code, text in replies:
        classify(code, text)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"bench.{BENCH}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="replies per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the fastest counts)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="TOML file of [[reply]]")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be positive")

    compile_start = time.perf_counter()
    rules = load_rules()
    compile_s = time.perf_counter() - compile_start
    corpus = load_replies(args.corpus)
    replies = (corpus * (args.n // len(corpus) + 1))[: args.n]
    chars = sum(len(t) for _, t in corpus) / len(corpus)
    log(f"{len(rules)} rules, {len(corpus)} distinct replies ({chars:.0f} chars on average)")

    one_round(replies[: min(len(replies), 2000)])  # warm-up
    seconds = []
    for i in range(args.rounds):
        seconds.append(one_round(replies))
        log(f"round {i + 1}/{args.rounds}: {args.n / seconds[-1]:,.0f} replies/s")
    best = min(seconds)
    per_s = args.n / best

    emit(
        metric="replies_per_s",
        value=round(per_s),
        unit="replies/s",
        target=TARGET_PER_S,
        n=args.n,
        rounds_per_s=[round(args.n / s) for s in seconds],
        median_per_s=round(args.n / statistics.median(seconds)),
        corpus=str(args.corpus.name),
        distinct_replies=len(corpus),
        mean_reply_chars=round(chars, 1),
    )
    emit(metric="us_per_reply", value=round(1e6 * best / args.n, 2), unit="us")

    # The long ones alone (Gmail, Outlook and Yahoo write 200-400 characters).
    long_corpus = [r for r in corpus if len(r[1]) >= LONG_CHARS]
    if long_corpus:
        long_replies = (long_corpus * (args.n // len(long_corpus) + 1))[: args.n]
        long_best = min(one_round(long_replies) for _ in range(args.rounds))
        emit(
            metric="long_replies_per_s",
            value=round(args.n / long_best),
            unit="replies/s",
            target=TARGET_PER_S,
            distinct_replies=len(long_corpus),
            mean_reply_chars=round(sum(len(t) for _, t in long_corpus) / len(long_corpus), 1),
            note=f"only the corpus replies of {LONG_CHARS} characters or more",
        )
    emit(metric="rules", value=len(rules), unit="rules", compile_ms=round(1000 * compile_s, 1))
    emit(
        metric="machine",
        value=platform.python_version(),
        unit="python",
        cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        processor=platform.processor() or platform.machine(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
