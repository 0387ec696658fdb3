"""llmtap: a self-hosted AI gateway for LLM observability, built as mitmproxy addons (see pipeline.py)."""
