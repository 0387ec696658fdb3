"""The local web dashboard: Helicone's dashboard over llmtap's own DuckDB file.

- `api.py`: what an endpoint receives (`Request`: the scope and arguments from the URL) and how its answer is
  written as JSON; `endpoints/`: one module per page, each a thin view over the query layer (`analytics.queries`).
- `server.py`: the tornado application (pages, static files, the JSON endpoints, the key check) and `DashboardServer`,
  which serves it on an event loop: mitmproxy's in the gateway (`addon.py`), its own for `llmtap dashboard`.
- `static/`: the page itself (HTML, CSS, JavaScript) and the vendored charting library, shipped in the package.
"""
