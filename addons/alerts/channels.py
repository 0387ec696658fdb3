"""Each alert channel's wire format, in one place: a webhook's JSON POST, a Slack incoming-webhook message, a mail
through SMTP. `send` delivers a notice once (retries are delivery.py's); `target_of` names where a channel goes
without its secrets, for the alerts table and the commands' output.

Blocking I/O: call these from a worker thread, never from mitmproxy's event loop.
"""

from __future__ import annotations

import email.utils
import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import cache
from typing import Any

from .notice import Notice
from .rules import Channel, Email, Slack, Smtp, Webhook

BODY_SHOWN = 200  # characters of a refusing endpoint's answer a failure's detail quotes
RETRIED_4XX = (408, 429)  # client errors that mend by themselves: a timeout, a rate limit
SLACK_HEADER_MAX = 150  # Slack's limit for a header block's plain text
SLACK_SECTION_MAX = 3000  # a section block's text: past it Slack refuses the whole message (invalid_blocks)
SLACK_FIELD_MAX = 2000  # each of a section's fields


class DeliveryFailed(Exception):
    """One try at a channel failed; `detail` says how (no secrets), `retryable` whether another try could mend it."""

    def __init__(self, detail: str, retryable: bool = True):
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable


def send(channel: Channel, notice: Notice, smtp: Smtp | None, timeout_s: float) -> str:
    """Deliver `notice` through `channel` once, each network step limited by `timeout_s`; a short detail of the
    success (`HTTP 200`, `250 2.0.0 OK`). Raises DeliveryFailed on any failure: a connection refused or timed out,
    a non-2xx answer (with the first 200 characters of its body), an SMTP error reply."""
    if isinstance(channel, Webhook):
        return _post_json(channel.url, notice.payload(), timeout_s)
    if isinstance(channel, Slack):
        return _post_json(channel.url, slack_message(notice), timeout_s)
    if smtp is None:  # config.py refuses an email channel without an `smtp` section; a caller may not have one
        raise DeliveryFailed("no smtp section in the config", retryable=False)
    return _mail(channel, notice, smtp, timeout_s)


def target_of(channel: Channel) -> str:
    """Where `channel` delivers, without secrets: a webhook URL without user info and query string, a Slack URL
    without its token (`hooks.slack.com/services/T000/…`), the mail addresses."""
    if isinstance(channel, Email):
        return ", ".join(channel.to)
    parts = urllib.parse.urlsplit(channel.url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    where = f"{host}:{parts.port}" if parts.port else host
    if isinstance(channel, Webhook):
        return f"{parts.scheme}://{where}{parts.path}"
    # A Slack incoming webhook is /services/<team>/<bot>/<token>: the URL is the secret, the team id is not.
    segments = parts.path.strip("/").split("/")
    return f"{where}/{'/'.join(segments[:2])}/…" if segments[:1] == ["services"] else f"{where}/…"


def slack_message(notice: Notice) -> dict[str, Any]:
    """The notice as a Slack incoming-webhook message: `text` (what notifications show) and Block Kit blocks, all
    plain text (nothing a rule name or scope value holds is read as a link or a mention)."""
    rule = notice.rule
    title = f"llmtap {notice.kind}: {rule.name}"
    facts = {
        "Value": notice.shown_value(),
        "Threshold": rule.describe_threshold(),
        "Window": notice.window_label,
        "Scope": _scope_text(notice),
        "Metric": rule.metric,
        "Action": rule.action,
    }
    return {
        "text": _slack_escape(notice.summary()),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(title, SLACK_HEADER_MAX)}},
            {"type": "section", "text": {"type": "plain_text", "text": _clip(notice.summary(), SLACK_SECTION_MAX)}},
            {"type": "section", "fields": [{"type": "plain_text", "text": _clip(f"{name}: {value}", SLACK_FIELD_MAX)}
                                           for name, value in facts.items()]},
            {"type": "context", "elements": [{"type": "plain_text",
                                              "text": f"{notice.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC · "
                                                      f"alert {notice.alert_id}"}]},
        ],
    }


def mail_message(notice: Notice, sender: str, to: tuple[str, ...]) -> EmailMessage:
    """The notice as a plain-text mail: the subject says what and how much, the body starts with the summary and
    then lists the rule's facts one per line."""
    rule = notice.rule
    relation = {"firing": "past", "resolved": "within"}.get(notice.kind, "against")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    subject = (f"[llmtap] {notice.kind}: {rule.name}{notice.who} — {notice.shown_value()} {relation} "
               f"{rule.describe_threshold()}")
    # A scope value is what a caller sent: a model name from a JSON body may hold a line break, which no header may.
    message["Subject"] = " ".join(subject.split())
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    # An explicit domain: make_msgid's default asks the resolver for this host's name, which can take seconds.
    message["Message-ID"] = email.utils.make_msgid(domain="llmtap.invalid")
    lines = [
        notice.summary(),
        "",
        f"rule: {rule.name}",
        f"kind: {notice.kind}",
        f"metric: {rule.metric}",
        f"value: {notice.shown_value()}",
        f"threshold: {rule.describe_threshold()}",
        f"window: {rule.window.text} ({notice.window_label})",
        f"scope: {_scope_text(notice)}",
        f"action: {rule.action}",
        f"at: {notice.at.astimezone(UTC).isoformat()}",
        f"alert id: {notice.alert_id}",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


def _scope_text(notice: Notice) -> str:
    scope = notice.rule.scope
    if scope == "all":
        return "all"
    return f"{scope} = {notice.scope_value}" if notice.scope_value is not None else f"{scope} (no value)"


def _clip(text: str, limit: int) -> str:
    # A scope value is whatever callers sent (a 10 KB user id): cut to what Slack takes, so the message still goes.
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > in `text` as markup (`<!channel>` would notify everyone).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- HTTP ----------------------------------------------------------------------------------------------------------

class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST would arrive elsewhere as a GET without its body: a redirect is a failure to deliver.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@cache
def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirects())


@cache
def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"llmtap/{version('llmtap')}"
    except PackageNotFoundError:
        return "llmtap"


def _post_json(url: str, body: dict[str, Any], timeout_s: float) -> str:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "User-Agent": _user_agent()})
    try:
        with _opener().open(request, timeout=timeout_s) as response:
            response.read(BODY_SHOWN)
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as e:
        answer = _first_chars(e.read(BODY_SHOWN * 4))
        raise DeliveryFailed(f"HTTP {e.code}" + (f": {answer}" if answer else ""),
                             retryable=not (400 <= e.code < 500) or e.code in RETRIED_4XX) from None
    except urllib.error.URLError as e:
        raise DeliveryFailed(_network_failure(e.reason, timeout_s)) from None
    except (OSError, ValueError) as e:  # a timeout while reading the answer; a URL urllib cannot use
        raise DeliveryFailed(_network_failure(e, timeout_s), retryable=isinstance(e, OSError)) from None


def _network_failure(reason: object, timeout_s: float) -> str:
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"no answer within {timeout_s:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {reason.verify_message}"
    if isinstance(reason, socket.gaierror):
        return f"host not found: {reason.strerror}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__


def _first_chars(body: bytes) -> str:
    return " ".join(body.decode("utf-8", "replace").split())[:BODY_SHOWN]


# --- mail ----------------------------------------------------------------------------------------------------------

class _RepliesKept:
    """smtplib's `sendmail` drops the server's answer to DATA, which is what says the mail was taken."""

    data_reply: tuple[int, bytes] | None = None

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.data_reply = super().data(msg)  # type: ignore[misc]
        return self.data_reply


class _Smtp(_RepliesKept, smtplib.SMTP):
    pass


class _SmtpSsl(_RepliesKept, smtplib.SMTP_SSL):
    pass


def _mail(channel: Email, notice: Notice, smtp: Smtp, timeout_s: float) -> str:
    message = mail_message(notice, smtp.sender, channel.to)
    timeout_s = min(timeout_s, smtp.timeout_s)
    context = ssl.create_default_context()  # read per mail: SSL_CERT_FILE as the process has it now
    server: _Smtp | _SmtpSsl
    try:
        server = (_SmtpSsl(smtp.host, smtp.port, timeout=timeout_s, context=context) if smtp.ssl
                  else _Smtp(smtp.host, smtp.port, timeout=timeout_s))
        with server:
            if smtp.starttls and not smtp.ssl:
                server.starttls(context=context)
            if smtp.user and smtp.password:
                server.login(smtp.user, smtp.password)
            refused = server.send_message(message, to_addrs=list(channel.to))
    except smtplib.SMTPRecipientsRefused as e:
        raise DeliveryFailed("every recipient refused: " + _refusals(e.recipients), retryable=False) from None
    except smtplib.SMTPResponseException as e:
        # A 5xx reply is permanent (bad credentials, a refused sender): another try gets the same answer.
        raise DeliveryFailed(_reply_text(e.smtp_code, e.smtp_error), retryable=e.smtp_code < 500) from None
    except smtplib.SMTPNotSupportedError as e:
        raise DeliveryFailed(f"the server does not support it: {e}", retryable=False) from None
    except smtplib.SMTPServerDisconnected as e:
        raise DeliveryFailed(f"the server closed the connection: {e}") from None
    except (OSError, smtplib.SMTPException) as e:
        raise DeliveryFailed(_network_failure(e, timeout_s)) from None
    detail = _reply_text(*server.data_reply) if server.data_reply else "sent"
    return detail + (f" (refused: {_refusals(refused)})" if refused else "")


def _reply_text(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(words.split())}"[:BODY_SHOWN]


def _refusals(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {_reply_text(*reply)}" for address, reply in recipients.items())
