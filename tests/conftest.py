"""Fixtures that start real processes: the mock provider and the llmtap gateway (`llmtap start`), on loopback only.

Every process a test starts is stopped by its fixture. The mock provider is the only stand-in: it speaks OpenAI's and
Anthropic's wire formats and can be told to fail (see scripts/mock_provider.py).
"""

from __future__ import annotations

import atexit
import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from llmtap.batch_writer import read_log

ROOT = Path(__file__).resolve().parent.parent
# The shared analytics workload's fixtures (`analytics`, `log_state`), for any test module that names them.
pytest_plugins = ("analytics_workload", "browser", "receivers")
OPENAI_ENV_KEY = "sk-llmtap-test-openai-env-key"
ANTHROPIC_ENV_KEY = "sk-ant-llmtap-test-env-key"

# Neither way between a developer's own llmtap and the tests: no LLMTAP_CONFIG, and the per-user directories (the
# records of running gateways, the built-in defaults' log and CA) in a directory of this test process, inherited by
# every process a test starts.
TEST_HOME = Path(tempfile.mkdtemp(prefix="llmtap-test-home-"))
atexit.register(shutil.rmtree, TEST_HOME, ignore_errors=True)
for _name in ("LLMTAP_CONFIG", "LLMTAP_STATE_DIR"):
    os.environ.pop(_name, None)
os.environ.update(XDG_STATE_HOME=str(TEST_HOME / "state"), XDG_DATA_HOME=str(TEST_HOME / "data"))


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: all are held open until all are chosen (one at a time, the kernel can hand out
    the same port twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class PortTaken(RuntimeError):
    """A port chosen for a gateway was taken by another process before the gateway could listen on it."""


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 30, log_from: int = 0) -> None:
    """Wait until `process` itself listens on `port`: it says so in its log (from offset `log_from`; a connection
    alone could reach another process that took the port meanwhile, e.g. a gateway of a parallel test worker) and
    accepts a connection."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text()[log_from:]
            if "address already in use" in output.lower():  # mitmproxy's listeners and llmtap's dashboard word it apart
                raise PortTaken(output)
            raise RuntimeError(f"process exited with {process.returncode}:\n{output}")
        if re.search(rf"listening at [^\s]+:{port}\.", log.read_text()[log_from:]):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open in {timeout_s}s:\n{log.read_text()}")


def stop(process: subprocess.Popen, timeout_s: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class CurlResult:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def curl(*args: str, timeout_s: float = 30) -> CurlResult:
    """Run the real curl with `args`; the final response's status, headers and body."""
    with tempfile.NamedTemporaryFile() as body:
        result = subprocess.run(["curl", "-s", "-D", "-", "-o", body.name, *args],
                                capture_output=True, timeout=timeout_s, check=True)
        text = Path(body.name).read_text()
    last_head = result.stdout.decode().strip().split("\r\n\r\n")[-1]
    status_line, *header_lines = last_head.split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    return CurlResult(int(status_line.split()[1]), headers, text)


def in_terminal(config_path: Path, *args: str, columns: int = 100) -> tuple[int, str, str]:
    """`llmtap ARGS --config CONFIG_PATH` on a pseudo-terminal (where rich draws colours and would read markup):
    its exit status, what it drew, and its stderr."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "llmtap.cli", *args, "--config", str(config_path)],
                               stdout=follower, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": str(columns)})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    status = process.wait(timeout=60)
    return status, b"".join(chunks).decode(), process.stderr.read().decode() if process.stderr else ""


@dataclass
class MockProvider:
    url: str
    process: subprocess.Popen

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def requests(self) -> list[dict[str, Any]]:
        """Every request the provider received, oldest first."""
        return self._call("GET", "/_mock/requests")

    def reset(self) -> None:
        self._call("DELETE", "/_mock/requests")

    def script(self, *actions: dict[str, Any]) -> None:
        """Queue actions (failures, delays, usage overrides) for the next provider requests."""
        self._call("POST", "/_mock/script", list(actions))


# Every mock provider started in this process, so each one's script and request log are reset after every test.
STARTED_MOCKS: list[MockProvider] = []


def start_mock_provider(*args: str) -> MockProvider:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "mock_provider.py"), "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("READY "):
        stop(process)
        raise RuntimeError(f"mock provider did not start: {line}")
    mock = MockProvider(line.split()[1], process)
    STARTED_MOCKS.append(mock)
    return mock


@pytest.fixture(autouse=True)
def reset_mock_providers() -> Iterator[None]:
    """After every test, each mock provider still running forgets the requests it saw and the scripted actions no
    call consumed: one test's leftover failure or delay never answers the next test's call, and `requests()` in a
    test holds only that test's calls. (Autouse fixtures are set up first, so this runs after every other teardown,
    gateways stopped included.)"""
    yield
    for mock in STARTED_MOCKS:
        if mock.process.poll() is None:
            mock.reset()


@pytest.fixture(scope="session")
def mock_provider() -> Iterator[MockProvider]:
    mock = start_mock_provider()
    yield mock
    stop(mock.process)


@pytest.fixture(scope="session")
def slow_mock_provider() -> Iterator[MockProvider]:
    """A provider that takes 150 ms between stream events, as a real model generates."""
    mock = start_mock_provider("--chunk-delay-ms", "150")
    yield mock
    stop(mock.process)


@dataclass
class Gateway:
    """A running `llmtap start` process and what a test needs to talk to it and read its log."""

    process: subprocess.Popen | None
    workdir: Path
    config_path: Path
    proxy_port: int
    gateway_port: int
    dashboard_port: int | None
    db_path: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()

    def launch(self) -> None:
        """Start `llmtap start` with this gateway's config; returns once both listeners accept connections."""
        log_from = len(self.log_path.read_text()) if self.log_path.exists() else 0  # this launch's lines only
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llmtap.cli", "start", "--config", str(self.config_path), *self.args],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(self.proxy_port, self.process, self.log_path, log_from=log_from)
            wait_for_port(self.gateway_port, self.process, self.log_path, log_from=log_from)
            if self.dashboard_port is not None:
                wait_for_port(self.dashboard_port, self.process, self.log_path, log_from=log_from)
        except RuntimeError:
            self.stop()
            raise

    def restart(self) -> None:
        assert self.stop() == 0
        self.launch()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}/v1"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def ca_cert(self) -> Path:
        return self.workdir / "certs" / "mitmproxy-ca-cert.pem"

    @property
    def ca_bundle(self) -> Path:
        return self.workdir / "certs" / "llmtap-ca-bundle.pem"

    def proxy_env(self) -> dict[str, str]:
        """The environment `llmtap env` tells a user to set: the no-code-change way in."""
        return {
            **os.environ,
            "HTTPS_PROXY": self.proxy_url,
            "SSL_CERT_FILE": str(self.ca_bundle),
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
            "NO_PROXY": "",
            "no_proxy": "",
        }

    def rows(self, where: str = "true", params: list[Any] | None = None, timeout_s: float = 10, count: int = 1) -> list[dict]:
        """Rows of `requests` matching `where`, waiting until at least `count` have been written."""
        deadline = time.monotonic() + timeout_s
        while True:
            names, found = read_log(self.db_path, f"SELECT * FROM requests WHERE {where} ORDER BY created_at", params)
            rows = [dict(zip(names, row, strict=True)) for row in found]
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    def row(self, request_id: str) -> dict:
        rows = self.rows("request_id = ?", [request_id])
        assert len(rows) == 1, f"expected one row for {request_id}, found {len(rows)}"
        return rows[0]

    def query(self, sql: str) -> list[tuple]:
        return read_log(self.db_path, sql)[1]

    def stop(self) -> int:
        return stop(self.process)

    def output(self) -> str:
        return self.log_path.read_text()


def start_gateway(workdir: Path, mock: MockProvider, extra_config: dict | None = None, env: dict | None = None,
                  args: tuple[str, ...] = (), proxy_bind: str = "127.0.0.1") -> Gateway:
    """`proxy_bind` "0.0.0.0" makes the proxy listener one other machines could reach (tests still connect to it
    on loopback only)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        try:
            return _start_gateway(workdir, mock, extra_config, env, args, proxy_bind)
        except PortTaken:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _address_port(address: str | None) -> int | None:
    """The port of a `listen` address as a config writes it (`127.0.0.1:8790`), None for off."""
    return None if address in (None, "", "off") else int(str(address).rpartition(":")[2])


def _start_gateway(workdir: Path, mock: MockProvider, extra_config: dict | None, env: dict | None,
                   args: tuple[str, ...], proxy_bind: str) -> Gateway:
    proxy_port, gateway_port, dashboard_port = free_ports(3)
    config = {
        "listen": {"proxy": f"{proxy_bind}:{proxy_port}", "gateway": f"127.0.0.1:{gateway_port}",
                   "dashboard": f"127.0.0.1:{dashboard_port}"},
        "certs": "certs",
        "storage": {"path": "data/llmtap.duckdb"},
        "providers": {"openai": {"upstream": mock.url}, "anthropic": {"upstream": mock.url}},
    }
    for key, value in (extra_config or {}).items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    config_path = workdir / "llmtap.yaml"
    config_path.write_text(yaml.safe_dump(config))
    full_env = {**os.environ, "OPENAI_API_KEY": OPENAI_ENV_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_ENV_KEY, **(env or {})}
    dashboard = _address_port(config["listen"].get("dashboard"))  # a test's own config may move or switch it off
    gateway = Gateway(None, workdir, config_path, proxy_port, gateway_port, dashboard, workdir / "data" / "llmtap.duckdb",
                      workdir / "gateway.log", full_env, args)
    gateway.launch()
    return gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, mock_provider) -> Iterator[Gateway]:
    """One gateway shared by a test module; tests tell their calls apart by request id or property."""
    gw = start_gateway(tmp_path_factory.mktemp("gateway"), mock_provider)
    yield gw
    gw.stop()


def shared_gateway(extra_config: dict | Callable[[MockProvider], dict] | None = None, env: dict | None = None):
    """A module-scoped fixture: one gateway with this config (a dict, or made from the mock provider) for every test of
    the module that names it; each test tells its own calls apart by request id or property, as with `gateway`.
    Starting a gateway takes seconds: tests that need the same config share one."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory, mock_provider) -> Iterator[Gateway]:
        config = extra_config(mock_provider) if callable(extra_config) else extra_config
        gw = start_gateway(tmp_path_factory.mktemp("gateway"), mock_provider, config, env)
        yield gw
        gw.stop()

    return fixture


@pytest.fixture
def fresh_gateway(tmp_path, mock_provider):
    """Start a gateway of the test's own (with extra config); every one started is stopped after the test."""
    started: list[Gateway] = []

    def start(extra_config: dict | None = None, env: dict | None = None, args: tuple[str, ...] = (),
              mock: MockProvider | None = None, proxy_bind: str = "127.0.0.1") -> Gateway:
        gw = start_gateway(tmp_path / f"gw{len(started)}", mock or mock_provider, extra_config, env, args, proxy_bind)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()
