"""The README's export recipe: `llmtap sql "COPY … TO 'calls.parquet'"` writes the log to Parquet beside a running
gateway, and the file holds the calls with exact money."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import duckdb
import openai


def test_copy_to_parquet_exports_the_calls_while_the_gateway_runs(gateway, tmp_path):
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Export me"}],
        extra_headers={"Helicone-Property-Feature": "export"})
    request_id = raw.headers["helicone-id"]
    logged = gateway.row(request_id)

    result = subprocess.run(
        [sys.executable, "-m", "llmtap.cli", "sql", "--config", str(gateway.config_path),
         f"COPY (SELECT * FROM requests WHERE request_id = '{request_id}') TO 'calls.parquet' (FORMAT parquet)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    exported = duckdb.connect().execute(
        "SELECT request_id, model, properties['feature'], cost_usd FROM read_parquet(?)",
        [str(tmp_path / "calls.parquet")]).fetchall()
    assert exported == [(request_id, "gpt-4o-mini-2024-07-18", "export", logged["cost_usd"])]
    assert isinstance(exported[0][3], Decimal) and exported[0][3] > 0
