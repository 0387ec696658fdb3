"""The benchmark's processes: the mock provider, bare mitmdump (reverse, proxy with TLS interception, echo) and llmtap
gateways, all on loopback, each logging to a file in the run's work directory, and every one stopped at the end.

Also the one measure taken from outside a process: its resident memory (VmRSS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from loopback import free_port, stop_all, wait_for_port  # beside this script

ROOT = Path(__file__).resolve().parent.parent
CANNED_ANSWER = {"id": "chatcmpl-echo", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "canned"},
                              "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}
ECHO_ADDON = """
from mitmproxy import http

def request(flow):
    flow.response = http.Response.make(200, {answer}, {{"content-type": "application/json"}})
"""
STREAM_ADDON = """
def responseheaders(flow):
    flow.response.stream = True
"""
PROXIED_ORIGIN = "https://api.openai.com"  # what a client of the proxy way in believes it calls


@dataclass
class Gateway:
    """A running llmtap gateway: its process, both ways in, the CA bundle its proxy clients trust, and its log."""

    process: subprocess.Popen
    gateway_port: int
    proxy_port: int
    ca_bundle: Path
    db_path: Path


class Fleet:
    """The processes of one benchmark run. `stop_all` (also on leaving a `with` block) ends every one it started."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []
        self.started_pids: list[int] = []  # every process ever started, stopped ones included
        # run by this Python: a venv copied from another keeps that one's interpreter in the script's #! line
        self.mitmdump = [sys.executable, str(Path(sys.executable).parent / "mitmdump")]

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        """Stop every process this fleet started (the last started first); kill any that does not stop in 30 s."""
        stop_all(self.processes, timeout_s=30)
        self.processes.clear()

    def stop(self, process: subprocess.Popen) -> None:
        """Stop one process of this fleet before the others."""
        stop_all([process], timeout_s=30)
        self.processes.remove(process)

    def mock(self) -> str:
        """Start the mock provider; returns its base URL."""
        port = free_port()
        mock = self._start("mock", [sys.executable, str(ROOT / "scripts" / "mock_provider.py"), "--port", str(port)])
        wait_for_port(port, process=mock)
        return f"http://127.0.0.1:{port}"

    def mitmdump_reverse(self, upstream_url: str, streaming: bool = False) -> int:
        """Start a bare mitmdump reverse proxy in front of `upstream_url`; returns its port. `streaming`: it passes
        every answer on as it arrives (`flow.response.stream`), as llmtap does with streams, instead of buffering
        each answer whole, which is mitmdump's default."""
        port, name = free_port(), "mitmdump-stream" if streaming else "mitmdump"
        process = self._start(name, [*self.mitmdump, "-q", "--mode", f"reverse:{upstream_url}@127.0.0.1:{port}",
                                     "--set", f"confdir={self.workdir / f'{name}-certs'}",
                                     *_streaming_args(streaming, self.workdir)])
        wait_for_port(port, process=process)
        return port

    def mitmdump_proxy(self, upstream_url: str, streaming: bool = False) -> tuple[int, Path]:
        """Start a bare mitmdump in regular (HTTPS_PROXY) mode that intercepts TLS to api.openai.com and maps it to
        `upstream_url` with mitmproxy's own map_remote, as llmtap's proxy listener does; returns its port and the CA
        certificate its clients trust. `streaming` as for `mitmdump_reverse`."""
        name = "mitmdump-proxy-stream" if streaming else "mitmdump-proxy"
        port, confdir = free_port(), self.workdir / f"{name}-certs"
        process = self._start(name, [
            *self.mitmdump, "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port),
            "--set", f"confdir={confdir}", "--set", "connection_strategy=lazy",  # no DNS, no connection to openai
            "--map-remote", f"|{PROXIED_ORIGIN}|{upstream_url}", *_streaming_args(streaming, self.workdir)])
        wait_for_port(port, process=process)
        return port, confdir / "mitmproxy-ca-cert.pem"

    def mitm_echo(self) -> int:
        """Start a bare mitmdump whose one-line addon answers every request itself: the floor for a cache hit."""
        port, addon = free_port(), self.workdir / "echo.py"
        addon.write_text(ECHO_ADDON.format(answer=json.dumps(json.dumps(CANNED_ANSWER))))
        process = self._start("mitm-echo", [
            *self.mitmdump, "-q", "--mode", f"reverse:http://127.0.0.1:9@127.0.0.1:{port}", "-s", str(addon),
            "--set", f"confdir={self.workdir / 'mitm-echo-certs'}",
            "--set", "connection_strategy=lazy"])  # nothing to connect to: it answers itself
        wait_for_port(port, process=process)
        return port

    def llmtap(self, name: str, upstream_url: str, db_path: Path | None = None) -> Gateway:
        """Start an llmtap gateway with the default config (logging, bodies, pricing on), both ways in routed to
        `upstream_url`, its log at `db_path` (a fresh one in its own directory when None)."""
        workdir = self.workdir / name
        workdir.mkdir()
        gateway_port, proxy_port = free_port(), free_port()
        db_path = db_path or workdir / "data" / "llmtap.duckdb"
        (workdir / "llmtap.yaml").write_text(json.dumps({
            "listen": {"proxy": f"127.0.0.1:{proxy_port}", "gateway": f"127.0.0.1:{gateway_port}",
                       "dashboard": "off"},
            "storage": {"path": str(db_path)},
            "providers": {"openai": {"upstream": upstream_url}},
        }))
        env = {**os.environ, "OPENAI_API_KEY": "sk-bench-env"}
        process = self._start(name, [sys.executable, "-m", "llmtap.cli", "start", "--config", "llmtap.yaml",
                                     "--", "-q"], env=env, cwd=workdir)
        wait_for_port(gateway_port, timeout_s=300, process=process)  # a 10M-row log may need migrating first
        wait_for_port(proxy_port, process=process)
        return Gateway(process, gateway_port, proxy_port, workdir / "certs" / "llmtap-ca-bundle.pem", db_path)

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.Popen:
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        self.processes.append(process)
        self.started_pids.append(process.pid)
        return process


def _streaming_args(streaming: bool, workdir: Path) -> list[str]:
    # mitmproxy's documented way to stream answers: `stream_large_bodies` would stream requests too, and a streamed
    # request is sent before map_remote has named the upstream.
    if not streaming:
        return []
    addon = workdir / "stream_answers.py"
    addon.write_text(STREAM_ADDON)
    return ["-s", str(addon)]


def rss_mib(pid: int) -> float:
    """The resident memory of process `pid` (VmRSS in /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
