"""A command that only reads the log starts without the gateway's code: reports stay under a second."""

from __future__ import annotations

import subprocess
import sys

from llmtap.config import WIRE_FORMAT_NAMES
from llmtap.wire import FORMATS


def test_config_knows_every_wire_format_by_name():
    assert WIRE_FORMAT_NAMES == tuple(f.name for f in FORMATS)


def test_reading_a_config_does_not_import_mitmproxy_or_genai_prices():
    # Importing them costs a report command about half a second of its start-up (scripts/bench_reports.py).
    probe = ("import sys; from llmtap.commands import llmtap; from llmtap.config import load_config; load_config(None); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'mitmproxy', 'genai_prices'}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
