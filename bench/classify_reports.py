"""Bounce emails per second through `queue_engine.reports.parse_report`, on one core.

    .venv/bin/python -m bench.classify_reports [--seconds 3] [--dir tests/reports/corpus]

Reads every *.eml of the corpus (DSNs of many MTAs, plain-text bounces, ARF
reports, auto-replies, Chinese charsets, base64 bodies) into memory, pins the
process to one CPU and parses them round-robin, the whole pipeline an inbound
report goes through (MIME reading, charset decoding, DSN/ARF/auto-reply
detection, recipient and reply extraction, `classify_reply`).

  emails_per_s               the corpus as it is (about 1.3 kB per email);
  emails_per_s_with_original each email with 32 kB more at its end, as when an
                             MP returns the whole original newsletter: the
                             realistic size of a bounce.

Each is the best of `--rounds` rounds of `--seconds`; `cpu_us_per_email` is CPU
time (user + system) per email in that round. Target: >= 1,000 emails/s.
Results are JSON lines on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

from queue_engine.reports import parse_report

BENCH = "classify_reports"
ROOT = Path(__file__).resolve().parent.parent
TARGET = 1000.0
FILLER = (
    b"<p>Hello, here is this week's selection of offers, with pictures and links: "
    b"https://shop.example/offers?utm_source=newsletter&amp;utm_medium=email</p>\r\n"
) * 200


_CLOSE = re.compile(rb"\r?\n--[^\r\n]+--[ \t\r\n]*\Z")


def with_original(raw: bytes) -> bytes:
    """The email with 32 kB more inside its last part (the returned original), or at its end."""
    close = _CLOSE.search(raw)
    if close is None:
        return raw + FILLER
    return raw[: close.start()] + b"\r\n" + FILLER + raw[close.start() :]


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": BENCH, **fields}), flush=True)


def log(message: str) -> None:
    print(f"[{BENCH} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "unpinned"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(samples: list[bytes], seconds: float) -> tuple[float, float, int]:
    """(emails/s, CPU µs per email, emails) of one round."""
    n = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for raw in samples:
            parse_report(raw)
        n += len(samples)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return n / wall, cpu / n * 1e6, n


def run(name: str, samples: list[bytes], seconds: float, rounds: int) -> None:
    for raw in samples:  # warm up: compiled rules, regex caches
        parse_report(raw)
    best = max((measure(samples, seconds) for _ in range(rounds)), key=lambda r: r[0])
    rate, cpu_us, n = best
    log(f"{name}: {rate:,.0f} emails/s ({cpu_us:.0f} µs CPU each)")
    emit(
        metric=name,
        value=round(rate, 1),
        unit="emails/s",
        cpu_us_per_email=round(cpu_us, 1),
        emails=n,
        samples=len(samples),
        mean_bytes=round(sum(map(len, samples)) / len(samples)),
        target=TARGET,
        meets_target=rate >= TARGET,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.classify_reports", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dir", type=Path, default=ROOT / "tests" / "reports" / "corpus")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best one counts")
    args = parser.parse_args(argv)
    samples = [p.read_bytes() for p in sorted(args.dir.glob("*.eml"))]
    if not samples:
        parser.error(f"no *.eml in {args.dir}")
    pinned = one_core()
    emit(
        metric="machine",
        cpu=cpu_model(),
        nproc=os.cpu_count(),
        pinned=pinned,
        python=platform.python_version(),
    )
    log(f"{len(samples)} emails from {args.dir}, {args.rounds} rounds of {args.seconds}s")
    run("emails_per_s", samples, args.seconds, args.rounds)
    run(
        "emails_per_s_with_original", [with_original(r) for r in samples], args.seconds, args.rounds
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
