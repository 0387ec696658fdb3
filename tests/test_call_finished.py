"""`call_finished`: llmtap's own mitmproxy event, which a user's mitmproxy script can subscribe to, as mitmproxy users
add behaviour (`llmtap start -- -s script.py`)."""

from __future__ import annotations

import json
import textwrap
from decimal import Decimal

import openai

SCRIPT = textwrap.dedent('''
    import json

    class SpendLog:
        """Writes one line per finished call: what a user's own alert or export would start from."""

        def call_finished(self, flow, record):
            with open(OUT, "a") as out:
                out.write(json.dumps({"request_id": record.request_id, "model": record.model,
                                      "cost_usd": str(record.cost_usd), "status": record.status,
                                      "user_id": record.user_id}) + "\\n")

    addons = [SpendLog()]
''')


def test_a_users_mitmproxy_script_gets_every_finished_call_with_its_row(fresh_gateway, tmp_path):
    out = tmp_path / "calls.jsonl"
    script = tmp_path / "spend_log.py"
    script.write_text(f"OUT = {str(out)!r}\n" + SCRIPT)
    gateway = fresh_gateway(args=("--", "-s", str(script)))
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "tell my script"}],
        extra_headers={"Helicone-User-Id": "ada"})
    request_id = raw.headers["helicone-id"]
    row = gateway.row(request_id)

    (line,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert Decimal(line.pop("cost_usd")) == row["cost_usd"] > 0
    assert line == {"request_id": request_id, "model": row["model"], "status": 200, "user_id": "ada"}
