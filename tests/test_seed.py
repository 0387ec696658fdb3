"""The tutorial llmtap grew from: its programs work with only base_url changed, and its questions are one query."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

PROGRAMS = Path(__file__).parent / "seed_programs"

COST_PER_STEP = """
    SELECT properties['step'] AS step, model, count(*) AS calls, sum(total_tokens) AS tokens, sum(cost_usd) AS cost_usd
    FROM requests WHERE properties['workflow'] = 'research-pipeline'
    GROUP BY ALL ORDER BY step
"""


def test_research_then_summarize_costs_per_step_in_one_query(fresh_gateway):
    gateway = fresh_gateway()
    for base_url in (f"http://127.0.0.1:{gateway.gateway_port}", gateway.base_url):  # the seed's form, and with /v1
        result = subprocess.run([sys.executable, str(PROGRAMS / "research_pipeline.py")], capture_output=True,
                                text=True, timeout=60, env={**os.environ, "LLMTAP_BASE_URL": base_url})
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Mock reply to: Mock reply to: Research the benefits")
    gateway.rows(count=4)
    steps = gateway.query(COST_PER_STEP)
    assert [(step, model, calls) for step, model, calls, _, _ in steps] == [
        ("research", "gpt-4o-2024-08-06", 2), ("summarize", "gpt-4o-mini-2024-07-18", 2)]
    ((input_tokens, output_tokens),) = gateway.query(
        "SELECT sum(input_tokens), sum(output_tokens) FROM requests WHERE properties['step'] = 'research'")
    # gpt-4o: $2.50 / $10 per million tokens
    assert steps[0][4] == (Decimal(input_tokens) * Decimal("2.5") + Decimal(output_tokens) * 10) / 10**6 > 0
    assert steps[1][4] > 0
    users = gateway.query("SELECT DISTINCT user_id FROM requests WHERE properties['workflow'] = 'research-pipeline'")
    assert users == [("student_1",)]

    # The same answer from the command line, while the gateway runs.
    cli = subprocess.run([sys.executable, "-m", "llmtap.cli", "sql", COST_PER_STEP, "--config", str(gateway.config_path),
                          "--format", "csv"], cwd=gateway.workdir, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.strip().splitlines()
    assert lines[0] == "step,model,calls,tokens,cost_usd" and lines[1].startswith("research,gpt-4o-2024-08-06,2,")
