"""The operator's files in prometheus/: scrape config, rules and their promtool tests,
and the Grafana dashboard, checked against what a live /metrics really exposes."""

from __future__ import annotations

import json
import re

import yaml
from scrapes import ARTIFACTS, DASHBOARD, RULE_FILES, dashboard_expressions, rules, run_tool

RULE_TESTS = sorted((ARTIFACTS / "tests").glob("*.yml"))
TOPICS = (
    "pending",
    "inbound",
    "attempted",
    "outbound",
    "paused queues by reason",
    "outcomes",
    "duration",
    "suppression",
)
"""What the dashboard must show (the issue's list)."""
METRIC = re.compile(r"\b(?:mailpulse|process|python)[a-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric and recorded-rule names in a PromQL expression (quoted label values aside)."""
    return set(METRIC.findall(re.sub(r'"[^"]*"', '""', expr)))


async def test_promtool_accepts_the_config_and_the_rules(promtool):
    status, output = await run_tool(promtool, "check", "config", str(ARTIFACTS / "prometheus.yml"))
    assert status == 0, output
    status, output = await run_tool(promtool, "check", "rules", *map(str, RULE_FILES))
    assert status == 0, output


async def test_the_rules_pass_their_promtool_tests(promtool):
    status, output = await run_tool(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert status == 0, output
    cases = [case for path in RULE_TESTS for case in yaml.safe_load(path.read_text())["tests"]]
    firing = {
        t["alertname"] for c in cases for t in c.get("alert_rule_test", []) if t["exp_alerts"]
    }
    assert firing == {r["alert"] for r in rules() if "alert" in r}  # each alert fires somewhere


def test_the_dashboard_imports_into_grafana_10_with_a_data_source_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["id"] is None and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in (p for p in dashboard["panels"] if p["type"] != "row"):
        sources = [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]
        assert all(s == {"type": "prometheus", "uid": "${datasource}"} for s in sources), panel
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    assert [topic for topic in TOPICS if topic not in titles] == []
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


async def test_every_metric_the_rules_and_dashboard_name_exists(live_system, scrape):
    """Against a live scrape, so a renamed metric breaks this test, not a dashboard."""
    exposed = (await scrape()).names
    recorded = {r["record"] for r in rules() if "record" in r}
    named = {
        m for e in [r["expr"] for r in rules()] + dashboard_expressions() for m in metric_names(e)
    }
    assert {m for m in named if ":" in m} - recorded == set()
    assert {m for m in named if ":" not in m} - exposed == set()
    assert {"mailpulse_queue_pending_emails", "mailpulse:queue_outbound:rate5m"} <= named
