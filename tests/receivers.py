"""Real local receivers for the alert channels: an HTTP server for webhooks and Slack, and an SMTP server (aiosmtpd),
both on 127.0.0.1 at a free port, recording everything that reaches them. A pytest plugin (listed in conftest's
`pytest_plugins`); every receiver a fixture starts is stopped when its test ends, its threads joined.

- `webhook_receiver`: `.url(path)`, `.fail(path, status, times)`, `.hang(path)`, `.wait_for(count, path, timeout_s)`,
  `.requests(path)`. Answers 200 with the body "ok", as Slack's incoming webhooks do.
- `smtp_receiver`: a plain SMTP server (no TLS, no AUTH); `start_smtp_receiver(...)` starts others: with AUTH
  (user/password), STARTTLS or implicit TLS with a self-signed certificate (`.cert_file`: point SSL_CERT_FILE of the
  sending process at it to trust it). `.wait_for(count, timeout_s)`, `.reject(reply, times)`.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"


def pytest_configure(config: pytest.Config) -> None:
    # A receiver with AUTH over implicit TLS is as safe as STARTTLS; aiosmtpd only knows of the latter and warns.
    config.addinivalue_line("filterwarnings", "ignore:Requiring AUTH while not requiring TLS:UserWarning")


# --- webhooks and Slack --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request as it reached the receiver, and the status it was answered with (None: never answered, the
    path hung)."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any  # the body parsed as JSON, or None when it is not JSON
    received_s: float  # time.monotonic() when the request had been read
    status: int | None


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 recording every request (any method, any path). Per path a test can make it fail
    (`fail`) or never answer (`hang`); otherwise it answers 200 "ok"."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._received: list[ReceivedRequest] = []
        self._failures: dict[str, list[int]] = {}  # path -> [status, times left]
        self._hanging: set[str] = set()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((HOST, 0), _handler_for(self))
        # Handler threads are joined at close (daemon_threads False, block_on_close True): none outlives the test.
        self._server.daemon_threads = False
        self.port: int = self._server.server_address[1]
        # Polling every 50 ms: stopping waits for the next poll (the default 0.5 s would add that to every test).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="webhook-receiver",
                                        daemon=True)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests (their connections close unanswered), stop listening, join every thread."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def url(self, path: str = "/hook") -> str:
        """The URL of `path` on this receiver (http://127.0.0.1:<port><path>)."""
        return f"http://{HOST}:{self.port}{path}"

    def fail(self, path: str, status: int, times: int) -> None:
        """Answer `status` to the first `times` requests to `path` (from now on), then 200 again."""
        with self._changed:
            self._failures[path] = [status, times]

    def hang(self, path: str) -> None:
        """Read each request to `path`, record it, and never answer until the receiver stops."""
        with self._changed:
            self._hanging.add(path)

    def requests(self, path: str | None = None) -> list[ReceivedRequest]:
        """Every request received so far (to `path` only, when given), oldest first."""
        with self._changed:
            return [r for r in self._received if path is None or r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout_s: float = 10) -> list[ReceivedRequest]:
        """The recorded requests (to `path`, when given) once there are at least `count`; raises AssertionError
        listing what did arrive when `timeout_s` passes first."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(matching := [r for r in self._received if path is None or r.path == path]) < count:
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    arrived = [(r.method, r.path, r.status, r.body[:200]) for r in self._received]
                    raise AssertionError(f"expected {count} request(s) to {path or 'any path'} within {timeout_s}s, "
                                         f"got {len(matching)}; everything received: {arrived}")
                self._changed.wait(left_s)
            return matching

    # Called from the handler threads.
    def _answer_for(self, path: str) -> int | None:
        with self._changed:
            if path in self._hanging:
                return None
            failure = self._failures.get(path)
            if failure and failure[1] > 0:
                failure[1] -= 1
                return failure[0]
            return 200

    def _record(self, request: ReceivedRequest) -> None:
        with self._changed:
            self._received.append(request)
            self._changed.notify_all()


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a client that connects and sends nothing does not hold a thread forever

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            path = self.path.split("?", 1)[0]
            status = receiver._answer_for(path)
            receiver._record(ReceivedRequest(
                method=self.command, path=path, headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                json=parsed, received_s=time.monotonic(), status=status))
            if status is None:
                receiver._stopping.wait()
                self.close_connection = True
                return
            answer = b"ok" if status < 300 else f"failing on purpose: {status}".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_POST = do_GET = do_PUT = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # keep pytest's output for the test's own messages

    return Handler


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A started webhook/Slack receiver, stopped when the test ends."""
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


# --- mail ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReceivedMail:
    """One message as the SMTP server accepted it."""

    sender: str  # the envelope's MAIL FROM
    recipients: list[str]  # the envelope's RCPT TO
    message: EmailMessage
    login: str | None  # the user that authenticated, None without AUTH
    tls: bool  # whether the session was encrypted (STARTTLS or implicit TLS)
    received_s: float  # time.monotonic()


class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1 collecting every message it accepts."""

    def __init__(self, user: str | None, password: str | None, tls: str | None, cert_file: Path | None) -> None:
        self.user, self.password, self.tls, self.cert_file = user, password, tls, cert_file
        self.host = HOST
        self.port = 0
        self._changed = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._rejections: list[Any] = []  # [reply, times left]
        self._controller: Controller | None = None

    def start(self) -> SmtpReceiver:
        context = None
        if self.cert_file is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.cert_file)
        options: dict[str, Any] = {}
        if self.user is not None:
            # aiosmtpd knows only of STARTTLS as TLS: over implicit TLS it would refuse AUTH as unencrypted.
            options.update(authenticator=self._authenticate, auth_required=True,
                           auth_require_tls=self.tls == "starttls")
        if self.tls == "starttls":
            options.update(tls_context=context, require_starttls=True)
        # The controller needs a concrete port (it connects to it to know it is up); another process can take a
        # free port before we listen, so try a few.
        for attempt in range(5):
            self.port = _free_port()
            controller = Controller(_MailHandler(self), hostname=HOST, port=self.port,
                                    ssl_context=context if self.tls == "implicit" else None, **options)
            try:
                controller.start()
            except (OSError, RuntimeError):
                if attempt == 4:
                    raise
                continue
            self._controller = controller
            return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[ReceivedMail]:
        """Every message accepted so far, oldest first."""
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, timeout_s: float = 10) -> list[ReceivedMail]:
        """The accepted messages once there are at least `count`; raises AssertionError with what arrived when
        `timeout_s` passes first."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self._messages) < count:
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    arrived = [(m.sender, m.recipients, m.message["Subject"]) for m in self._messages]
                    raise AssertionError(f"expected {count} message(s) within {timeout_s}s, got {arrived}")
                self._changed.wait(left_s)
            return list(self._messages)

    def reject(self, reply: str = "554 5.7.1 rejected on purpose", times: int = 1) -> None:
        """Answer the next `times` messages' DATA with `reply` (an SMTP error) instead of accepting them."""
        with self._changed:
            self._rejections = [reply, times]

    def _next_rejection(self) -> str | None:
        with self._changed:
            if self._rejections and self._rejections[1] > 0:
                self._rejections[1] -= 1
                return str(self._rejections[0])
            return None

    def _record(self, mail: ReceivedMail) -> None:
        with self._changed:
            self._messages.append(mail)
            self._changed.notify_all()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user
                and auth_data.password.decode() == self.password):
            return AuthResult(success=True, auth_data=auth_data.login.decode())
        return AuthResult(success=False, handled=False)


class _MailHandler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        if rejection := self.receiver._next_rejection():
            return rejection
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.receiver._record(ReceivedMail(
            sender=envelope.mail_from, recipients=list(envelope.rcpt_tos), message=message,
            login=session.auth_data if isinstance(session.auth_data, str) else None,
            tls=session.ssl is not None or self.receiver.tls == "implicit", received_s=time.monotonic()))
        return "250 2.0.0 OK queued"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def self_signed_certificate(directory: Path) -> Path:
    """A PEM file holding a new self-signed certificate for 127.0.0.1 and localhost and its key (the server loads
    both from it; a client trusts it by pointing SSL_CERT_FILE at it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmtap test SMTP")])
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / "smtp-receiver.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


StartSmtpReceiver = Callable[..., SmtpReceiver]


@pytest.fixture
def start_smtp_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartSmtpReceiver]:
    """`start_smtp_receiver(user=None, password=None, tls=None)`: start an SMTP receiver, stopped when the test
    ends. With `user` and `password` it requires AUTH (PLAIN/LOGIN) before MAIL; `tls="starttls"` offers and requires
    STARTTLS, `tls="implicit"` speaks TLS from the first byte (smtplib.SMTP_SSL), both with a self-signed
    certificate in `.cert_file`."""
    started: list[SmtpReceiver] = []

    def start(user: str | None = None, password: str | None = None, tls: str | None = None) -> SmtpReceiver:
        if tls not in (None, "starttls", "implicit"):
            raise ValueError(f"tls: expected None, 'starttls' or 'implicit', got {tls!r}")
        cert_file = self_signed_certificate(tmp_path_factory.mktemp("smtp-tls")) if tls else None
        receiver = SmtpReceiver(user, password, tls, cert_file)
        started.append(receiver)
        return receiver.start()

    try:
        yield start
    finally:
        for receiver in started:
            receiver.stop()


@pytest.fixture
def smtp_receiver(start_smtp_receiver: StartSmtpReceiver) -> SmtpReceiver:
    """A started plain SMTP receiver (no TLS, no AUTH), stopped when the test ends."""
    return start_smtp_receiver()
