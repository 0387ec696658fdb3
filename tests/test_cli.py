"""`llmtap` on the command line: a bad config stops start-up with one clear line, never a traceback; and no command
depends on the directory it is run in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from llmtap.locations import find_config, record_running_gateway

from conftest import ROOT, Gateway, free_ports


def llmtap(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=None if env is None else {**os.environ, **env})


@pytest.mark.parametrize("config, names", [
    ("listen: {proxy: 127.0.0.1:8080, gatway: 127.0.0.1:1}\n", "listen.gatway"),
    ("listen: {proxy: 'localhost:http'}\n", "listen.proxy"),
    ("providers: {openai: {upstream: 'ftp://x'}}\n", "providers.openai.upstream"),
    ("listen: {gateway: 0.0.0.0:8787}\n", "gateway.keys"),
    ("storage: [1, 2]\n", "storage"),
    ("listen: {proxy: [\n", "line"),
])
def test_bad_config_stops_start_with_one_line_naming_the_key(tmp_path, config, names):
    path = tmp_path / "llmtap.yaml"
    path.write_text(config)
    result = llmtap("start", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmtap: config error: ") and names in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_named(tmp_path):
    result = llmtap("start", "--config", "nowhere.yaml", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == "llmtap: config error: config file not found: nowhere.yaml"


def test_sql_before_any_call_says_there_is_no_log_yet(tmp_path):
    result = llmtap("sql", "SELECT 1", cwd=tmp_path, env={"XDG_DATA_HOME": str(tmp_path / "home")})
    assert result.returncode == 1 and "no log yet" in result.stderr and "Traceback" not in result.stderr


def test_sql_error_is_one_line(fresh_gateway):
    gateway = fresh_gateway()
    result = llmtap("sql", "SELECT nope FROM requests", "--config", str(gateway.config_path), cwd=gateway.workdir)
    assert result.returncode == 1 and "nope" in result.stderr and "Traceback" not in result.stderr


# --- Nothing depends on the current directory ---

@pytest.fixture(scope="module")
def gateway_elsewhere(tmp_path_factory, mock_provider) -> Iterator[Gateway]:
    """A gateway whose config (relative paths) is in one directory, started from another, recorded in a state
    directory of its own (`gateway_elsewhere.env`: commands given it find this gateway)."""
    config_dir, start_dir = tmp_path_factory.mktemp("config_dir"), tmp_path_factory.mktemp("start_dir")
    proxy_port, gateway_port = free_ports(2)
    config_path = config_dir / "llmtap.yaml"
    config_path.write_text(yaml.safe_dump({
        "listen": {"proxy": f"127.0.0.1:{proxy_port}", "gateway": f"127.0.0.1:{gateway_port}", "dashboard": "off"},
        "certs": "ca", "storage": {"path": "logs/calls.duckdb"}, "cache": {"path": "logs/cache"},
        "providers": {"openai": {"upstream": mock_provider.url}},
    }))
    env = {"LLMTAP_STATE_DIR": str(tmp_path_factory.mktemp("state"))}
    gw = Gateway(None, start_dir, config_path, proxy_port, gateway_port, None, config_dir / "logs" / "calls.duckdb",
                 start_dir / "gateway.log", {**os.environ, "OPENAI_API_KEY": "sk-llmtap-own", **env})
    gw.launch()
    yield gw
    gw.stop()


def call_through_gateway(gateway: Gateway, content: str) -> str:
    """One chat call on the gateway way in; its request id."""
    result = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", f"{gateway.base_url}/chat/completions",
                             "-H", "Content-Type: application/json", "-d",
                             json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})],
                            capture_output=True, text=True, timeout=30, check=True)
    return re.search(r"(?im)^helicone-id: (\S+)", result.stdout).group(1)


def test_a_config_started_from_another_directory_keeps_its_files_beside_it(gateway_elsewhere):
    request_id = call_through_gateway(gateway_elsewhere, "files beside the config")
    config_dir = gateway_elsewhere.config_path.parent
    assert gateway_elsewhere.row(request_id)["status"] == 200  # read from config_dir/logs/calls.duckdb
    assert (config_dir / "ca" / "mitmproxy-ca-cert.pem").is_file()
    assert sorted(p.name for p in gateway_elsewhere.workdir.iterdir()) == ["gateway.log"]  # nothing where it started


def test_commands_run_elsewhere_without_config_use_the_running_gateways(gateway_elsewhere, tmp_path):
    request_id = call_through_gateway(gateway_elsewhere, "found from elsewhere")
    gateway_elsewhere.row(request_id)  # written

    env = llmtap("env", cwd=tmp_path, env=gateway_elsewhere.env)
    exports = dict(line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines())
    assert exports["HTTPS_PROXY"] == gateway_elsewhere.proxy_url
    assert Path(exports["SSL_CERT_FILE"]).parent == gateway_elsewhere.config_path.parent / "ca"
    assert env.stderr == f"llmtap: config {gateway_elsewhere.config_path} (the running gateway's, pid " \
                         f"{gateway_elsewhere.process.pid})\n"

    sql = llmtap("sql", f"SELECT status FROM requests WHERE request_id = '{request_id}'", cwd=tmp_path,
                 env=gateway_elsewhere.env)
    assert sql.returncode == 0, sql.stderr
    assert [json.loads(line) for line in sql.stdout.splitlines()] == [{"status": 200}]

    status = llmtap("status", "--json", cwd=tmp_path, env=gateway_elsewhere.env)
    assert status.returncode == 0 and json.loads(status.stdout)["gateway_running"] is True
    stats = llmtap("cache", "stats", cwd=tmp_path, env=gateway_elsewhere.env)
    assert stats.returncode == 0 and str(gateway_elsewhere.config_path.parent / "logs" / "cache") in stats.stdout
    assert list(tmp_path.iterdir()) == []  # no second CA, no log, no cache where the commands ran


def test_the_banners_env_lines_work_from_any_directory(gateway_elsewhere, tmp_path):
    commands = re.findall(r'eval "\$\((.+)\)"', gateway_elsewhere.output())
    assert len(commands) == 2 and all(Path(command.split()[0]).is_absolute() for command in commands)
    stranger = {"LLMTAP_STATE_DIR": str(tmp_path / "no-records")}  # a shell that does not know the running gateway
    printed = [subprocess.run(["bash", "-c", f'eval "$({command})" && echo "$HTTPS_PROXY $OPENAI_BASE_URL"'],
                              cwd=tmp_path, env={**os.environ, **stranger}, capture_output=True, text=True,
                              timeout=60, check=True).stdout.strip() for command in commands]
    assert printed == [f"{gateway_elsewhere.proxy_url}", f"{gateway_elsewhere.base_url}"]
    assert [p.name for p in tmp_path.iterdir()] == []


def test_the_config_lookup_order(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMTAP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    assert find_config(None).path is None  # nothing anywhere: the built-in defaults

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "llmtap.yaml").write_text("{}\n")
    assert find_config(None).path == tmp_path / "config" / "llmtap.yaml"

    crashed = subprocess.Popen(["true"])
    crashed.wait()  # its pid is gone: its record is stale
    record = record_running_gateway(tmp_path / "a-gateway-that-crashed.yaml")
    stale = record.with_name(f"{crashed.pid}.json")
    record.rename(stale)
    stale.write_text(stale.read_text().replace(f'"pid": {os.getpid()}', f'"pid": {crashed.pid}'))
    assert find_config(None).path == tmp_path / "config" / "llmtap.yaml" and not stale.exists()

    reused = record_running_gateway(tmp_path / "a-gateway-whose-pid-was-reused.yaml")
    reused.write_text(re.sub(r'"process_start": "?\w+"?', '"process_start": "1"', reused.read_text()))
    assert find_config(None).path == tmp_path / "config" / "llmtap.yaml" and not reused.exists()

    record_running_gateway(tmp_path / "running.yaml")  # this process stands for a running gateway
    assert find_config(None).path == tmp_path / "running.yaml"
    assert "running gateway" in find_config(None).why
    assert find_config(None, for_start=True).path == tmp_path / "config" / "llmtap.yaml"  # start starts its own

    monkeypatch.setenv("LLMTAP_CONFIG", str(tmp_path / "chosen.yaml"))
    assert find_config(None).path == tmp_path / "chosen.yaml" and find_config(None).implicit
    assert find_config("explicit.yaml").path == Path("explicit.yaml") and not find_config("explicit.yaml").implicit


def test_the_repository_config_keeps_data_and_certs_at_the_top(tmp_path):
    from llmtap.config import load_config

    config = load_config(ROOT / "config" / "llmtap.yaml")
    assert (config.storage_path, config.cache_path, config.certs_dir) == (
        ROOT / "data" / "llmtap.duckdb", ROOT / "data" / "llmtap-cache", ROOT / "certs")


@pytest.mark.parametrize("args, named", [
    (["nope"], "No such command 'nope'"),
    (["sql", "SELECT 1", "--formt", "json"], "--formt"),
    (["sql", "SELECT 1", "--format", "yaml"], "'yaml' is not one of"),
    (["cache", "clear", "--older-than", "3x"], "expected an age such as 90s"),
    (["cache", "stats", "--days", "0"], "--days"),
])
def test_a_mistyped_command_line_is_one_line_and_exit_status_2(tmp_path, args, named):
    result = llmtap(*args, cwd=tmp_path, env={"XDG_DATA_HOME": str(tmp_path / "home")})
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmtap") and named in lines[0], result.stderr


def test_every_command_help_lists_is_the_command_it_names():
    """Commands are imported only when used (commands.COMMANDS): each name `llmtap --help` lists finds its own."""
    import click
    from click.testing import CliRunner
    from llmtap.commands import llmtap as group

    listed = re.findall(r"^  (\w+)  ", CliRunner().invoke(group, ["--help"]).output, re.MULTILINE)
    assert {"start", "env", "sql", "logs", "costs", "dashboard"} <= set(listed)
    context = click.Context(group)
    assert [(group.get_command(context, name) or group).name for name in listed] == listed
