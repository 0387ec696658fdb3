"""The HTTPS_PROXY way in, end to end: unchanged client programs, only the environment `llmtap env` prints."""

from __future__ import annotations

import datetime
import http.server
import json
import os
import ssl
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import curl


def run_client(gateway, program: str) -> dict:
    """Run `program` in a fresh Python with the proxy environment; it prints one JSON object."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(program)], env=gateway.proxy_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_openai_sdk_with_no_code_change_is_logged_and_keeps_its_own_key(gateway, mock_provider):
    out = run_client(gateway, """
        import json, openai
        client = openai.OpenAI(api_key="sk-client-own-key", max_retries=0)  # the real api.openai.com base URL
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "through the proxy"}],
            extra_headers={"Helicone-Property-Workflow": "proxy-test"})
        c = raw.parse()
        print(json.dumps({"id": raw.headers["helicone-id"], "text": c.choices[0].message.content,
                          "in": c.usage.prompt_tokens, "out": c.usage.completion_tokens}))
    """)
    assert out["text"] == "Mock reply to: through the proxy"
    seen = mock_provider.requests()[-1]
    assert seen["headers"]["authorization"] == "Bearer sk-client-own-key"
    assert not [name for name in seen["headers"] if name.startswith("helicone-")]
    row = gateway.row(out["id"])
    assert row["way"] == "proxy" and row["host"] == "api.openai.com" and row["provider"] == "openai"
    assert (row["input_tokens"], row["output_tokens"]) == (out["in"], out["out"]) and row["cost_usd"] > 0
    assert row["properties"] == {"workflow": "proxy-test"} and row["key_hash"].startswith("sha256:")


def test_streams_through_the_proxy_are_logged(gateway):
    out = run_client(gateway, """
        import json, openai, anthropic
        with openai.OpenAI(api_key="sk-x", max_retries=0).chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "proxy stream"}]) as r:
            oid = r.headers["helicone-id"]
            usage_chunks = sum(1 for line in r.iter_lines() if '"choices": []' in line)
        with anthropic.Anthropic(api_key="sk-ant-x", max_retries=0).messages.stream(
                model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "proxy stream"}]) as s:
            text = "".join(s.text_stream)
            aid = s.response.headers["helicone-id"]
        print(json.dumps({"openai": oid, "anthropic": aid, "usage_chunks": usage_chunks, "text": text}))
    """)
    assert out["text"] == "Mock reply to: proxy stream" and out["usage_chunks"] == 0
    for request_id, provider in ((out["openai"], "openai"), (out["anthropic"], "anthropic")):
        row = gateway.row(request_id)
        assert row["way"] == "proxy" and row["provider"] == provider and row["stream"] is True
        assert row["output_tokens"] == 5 and row["cost_usd"] > 0


def test_curl_through_the_proxy_with_the_ca(gateway):
    result = curl("--proxy", gateway.proxy_url, "--cacert", str(gateway.ca_cert),
                  "https://api.openai.com/v1/chat/completions", "-H", "Authorization: Bearer sk-curl",
                  "-H", "Content-Type: application/json", "-H", "Helicone-User-Id: curl-user",
                  "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "curl via proxy"}]}')
    assert result.status == 200 and result.json()["choices"][0]["message"]["content"] == "Mock reply to: curl via proxy"
    row = gateway.row(result.headers["helicone-id"])
    assert row["user_id"] == "curl-user" and row["way"] == "proxy"


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on loopback with its own CA: stands for any host llmtap must not touch."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unrelated Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    (tmp_path / "ca.pem").write_bytes(pem(ca))
    (tmp_path / "server.pem").write_bytes(pem(cert) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"unrelated host says hi"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], tmp_path / "ca.pem"
    server.shutdown()
    server.server_close()


def test_other_hosts_pass_through_untouched_with_their_real_certificate(gateway, tls_server):
    port, server_ca = tls_server
    before = len(gateway.rows(timeout_s=0))
    # Only the server's own CA is trusted: this succeeds only if the real certificate reached curl.
    result = curl("--proxy", gateway.proxy_url, "--cacert", str(server_ca), f"https://localhost:{port}/")
    assert result.status == 200 and result.body == "unrelated host says hi"
    assert "helicone-id" not in result.headers
    assert len(gateway.rows(timeout_s=0)) == before


def llmtap_env(gateway, *args: str, cwd: Path) -> dict[str, str]:
    """The variables `llmtap env` (with `args`) exports, as `eval "$(llmtap env)"` would set them."""
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", "env", "--config", str(gateway.config_path), *args],
                            cwd=cwd, capture_output=True, text=True, timeout=60, check=True)
    return dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines()
                if not line.startswith("#"))


def test_llmtap_env_prints_the_proxy_way_in_only(gateway, tmp_path):
    exports = llmtap_env(gateway, cwd=tmp_path)
    assert set(exports) == {"HTTPS_PROXY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"}
    assert exports["HTTPS_PROXY"] == gateway.proxy_url
    assert Path(exports["SSL_CERT_FILE"]) == gateway.ca_bundle.resolve()
    assert Path(exports["REQUESTS_CA_BUNDLE"]) == gateway.ca_bundle.resolve()
    assert Path(exports["NODE_EXTRA_CA_CERTS"]) == gateway.ca_cert.resolve()
    assert gateway.ca_cert.read_text() in gateway.ca_bundle.read_text()


def test_an_app_in_the_environment_llmtap_env_prints_keeps_its_own_key_and_goes_through_the_proxy(
        gateway, mock_provider, tmp_path):
    # The gateway process has llmtap's own OPENAI_API_KEY (conftest): the app's key must be the one that goes out.
    app_env = {name: value for name, value in os.environ.items() if not name.startswith(("OPENAI_", "ANTHROPIC_"))}
    app_env |= llmtap_env(gateway, cwd=tmp_path) | {"OPENAI_API_KEY": "sk-app-own-key", "NO_PROXY": "", "no_proxy": ""}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import json, openai
        raw = openai.OpenAI(max_retries=0).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "an unchanged app"}])
        print(json.dumps({"id": raw.headers["helicone-id"], "text": raw.parse().choices[0].message.content}))
    """)], env=app_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["text"] == "Mock reply to: an unchanged app"
    assert mock_provider.requests()[-1]["headers"]["authorization"] == "Bearer sk-app-own-key"
    row = gateway.row(out["id"])
    assert row["way"] == "proxy" and row["host"] == "api.openai.com"


def test_llmtap_env_gateway_prints_the_base_urls_both_sdks_read(gateway, mock_provider, tmp_path):
    exports = llmtap_env(gateway, "--gateway", cwd=tmp_path)
    assert exports == {"OPENAI_BASE_URL": gateway.base_url, "ANTHROPIC_BASE_URL": gateway.base_url.removesuffix("/v1")}
    app_env = {name: value for name, value in os.environ.items() if not name.startswith(("OPENAI_", "ANTHROPIC_"))}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import json, anthropic, openai
        o = openai.OpenAI(api_key="unused", max_retries=0).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "by base URL"}])
        a = anthropic.Anthropic(api_key="unused", max_retries=0).messages.with_raw_response.create(
            model="claude-sonnet-4-6", max_tokens=20, messages=[{"role": "user", "content": "by base URL"}])
        print(json.dumps([o.headers["helicone-id"], a.headers["helicone-id"]]))
    """)], env=app_env | exports, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for request_id, provider in zip(json.loads(result.stdout), ("openai", "anthropic"), strict=True):
        row = gateway.row(request_id)
        assert row["way"] == "gateway" and row["provider"] == provider and row["status"] == 200
