"""Alert delivery as a user meets it: notices reach a real HTTP receiver (webhook, Slack) and a real SMTP server
(aiosmtpd, STARTTLS + AUTH), failures are retried and recorded in the log's `alerts` table, a hanging endpoint holds
up nothing else, and `llmtap alerts test` says what each channel answered. No gateway is needed: the log is a real
DuckDB file migrated the way the gateway migrates it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from llmtap.alerts import delivery as delivery_module
from llmtap.alerts.channels import mail_message, slack_message
from llmtap.alerts.delivery import DROPPED, STOPPED, Delivery
from llmtap.alerts.notice import Notice
from llmtap.config import Config, load_config
from llmtap.migrations import migrate

from conftest import free_port
from receivers import SmtpReceiver, WebhookReceiver

SLACK_TOKEN = "XXXslacktokenXXX"
SMTP_PASSWORD = "s3cret-smtp-password"
PASSWORD_ENV = "LLMTAP_TEST_SMTP_PASSWORD"
FAST = {"delivery_attempts": 3, "delivery_backoff_s": 0.05, "delivery_timeout_s": 2}
AT = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)


def new_log(directory: Path) -> Path:
    """A log file migrated as the gateway migrates it at start-up (tables `requests`, `alerts`)."""
    log = directory / "data" / "llmtap.duckdb"
    log.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(log)) as db:
        migrate(db)
    return log


def write_config(directory: Path, rules: list[dict[str, Any]], smtp: dict[str, Any] | None = None,
                 alerting: dict[str, Any] | None = None) -> Path:
    config: dict[str, Any] = {"storage": {"path": "data/llmtap.duckdb"}, "alerts": rules,
                              "alerting": {**FAST, **(alerting or {})}}
    if smtp is not None:
        config["smtp"] = smtp
    path = directory / "llmtap.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def rule(channels: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"name": "daily-spend", "metric": "spend_usd", "window": "day", "threshold": 50, "channels": channels,
            **fields}


def smtp_section(receiver: SmtpReceiver) -> dict[str, Any]:
    tls = {"ssl": True} if receiver.tls == "implicit" else {"starttls": True}
    return {"host": receiver.host, "port": receiver.port, "from": "llmtap@example.com", **tls,
            "user": "alerts", "password_env": PASSWORD_ENV}


def firing(config: Config, value: float = 51.2, scope_value: str | None = None) -> Notice:
    day_start = AT.replace(hour=0, minute=0)
    return Notice(config.alert_rules[0], "firing", value, scope_value, AT, day_start)


def alert_rows(log: Path) -> list[dict[str, Any]]:
    with duckdb.connect(str(log), read_only=True) as db:
        cursor = db.execute("SELECT * FROM alerts ORDER BY created_at, channel")
        columns = [d[0] for d in cursor.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def smtp_server(start_smtp_receiver, monkeypatch, tls: str) -> SmtpReceiver:
    """An SMTP server requiring TLS and AUTH (alerts / SMTP_PASSWORD); this process trusts its certificate and has
    the password in PASSWORD_ENV."""
    receiver = start_smtp_receiver(user="alerts", password=SMTP_PASSWORD, tls=tls)
    monkeypatch.setenv("SSL_CERT_FILE", str(receiver.cert_file))
    monkeypatch.setenv(PASSWORD_ENV, SMTP_PASSWORD)
    return receiver


@pytest.fixture
def smtp_with_tls(start_smtp_receiver, monkeypatch) -> SmtpReceiver:
    """An SMTP server requiring STARTTLS and AUTH."""
    return smtp_server(start_smtp_receiver, monkeypatch, "starttls")


@pytest.fixture
def delivered(tmp_path):
    """`delivered(config)`: a Delivery on the config's log, closed (and so fully recorded) when the test ends."""
    made: list[Delivery] = []

    def make(config: Config) -> Delivery:
        delivery = Delivery(config.storage_path, config.smtp, config.alerting)
        delivery.start()
        made.append(delivery)
        return delivery

    yield make
    for delivery in made:
        delivery.close(wait_s=0)


def test_webhook_gets_every_field_of_the_notice_as_json(tmp_path, webhook_receiver: WebhookReceiver, delivered):
    log = new_log(tmp_path)
    config = load_config(write_config(tmp_path, [rule([{"webhook": webhook_receiver.url("/hook?token=abc")}],
                                                      scope="user")]))
    notice = firing(config, scope_value="carol")
    delivery = delivered(config)
    delivery.submit(notice)

    [request] = webhook_receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "llmtap/0.1.0"
    assert request.json == {
        "alert_id": notice.alert_id, "kind": "firing", "rule": "daily-spend", "metric": "spend_usd", "value": 51.2,
        "threshold": 50.0, "window": "day", "window_label": "2026-11-27", "period_start": "2026-11-27T00:00:00+00:00",
        "scope": "user", "scope_value": "carol", "action": "notify", "at": "2026-11-27T10:30:00+00:00",
        "summary": "llmtap: 'daily-spend': spend for user 'carol' over 2026-11-27 is $51.20, past the threshold of "
                   "$50.00.",
    }
    delivery.close(wait_s=5)
    [row] = alert_rows(log)
    assert {k: row[k] for k in ("alert_id", "rule", "kind", "scope_value", "metric_value", "threshold", "channel",
                                "target", "outcome", "detail", "attempts")} == {
        "alert_id": notice.alert_id, "rule": "daily-spend", "kind": "firing", "scope_value": "carol",
        "metric_value": 51.2, "threshold": 50.0, "channel": "webhook",
        "target": webhook_receiver.url("/hook"),  # no query string: it may hold a token
        "outcome": "sent", "detail": "HTTP 200", "attempts": 1}
    assert row["summary"] == notice.summary()


def test_slack_gets_an_incoming_webhook_message_and_its_token_is_kept_secret(tmp_path, webhook_receiver, delivered):
    log = new_log(tmp_path)
    slack_url = webhook_receiver.url(f"/services/T000/B000/{SLACK_TOKEN}")
    config = load_config(write_config(tmp_path, [rule([{"slack": slack_url}])]))
    notice = firing(config)
    delivery = delivered(config)
    delivery.submit(notice)

    [request] = webhook_receiver.wait_for(1)
    message = request.json
    assert message["text"] == notice.summary()
    assert [block["type"] for block in message["blocks"]] == ["header", "section", "section", "context"]
    assert message["blocks"][0]["text"] == {"type": "plain_text", "text": "llmtap firing: daily-spend"}
    assert message["blocks"][1]["text"] == {"type": "plain_text", "text": notice.summary()}
    fields = [field["text"] for field in message["blocks"][2]["fields"]]
    assert "Value: $51.20" in fields and "Threshold: $50.00" in fields and "Window: 2026-11-27" in fields
    assert "http" not in request.body.decode()  # link-free
    delivery.close(wait_s=5)
    [row] = alert_rows(log)
    assert row["outcome"] == "sent" and row["channel"] == "slack"
    assert row["target"] == f"127.0.0.1:{webhook_receiver.port}/services/T000/…"
    assert SLACK_TOKEN not in json.dumps(row, default=str)


def test_a_slack_message_for_a_10kb_scope_value_keeps_within_slacks_limits(tmp_path):
    # Slack refuses a whole message (400 invalid_blocks) whose section text passes 3,000 characters or a field 2,000.
    config = load_config(write_config(tmp_path, [rule([{"slack": "https://hooks.slack.com/services/T/B/X"}],
                                                      scope="user")]))
    message = slack_message(firing(config, scope_value="u" * 10_000))
    header, summary, facts, _ = message["blocks"]
    assert len(header["text"]["text"]) <= 150
    assert len(summary["text"]["text"]) <= 3000 and summary["text"]["text"].endswith("…")
    assert summary["text"]["text"].startswith("llmtap: 'daily-spend': spend for user 'uuu")
    assert all(len(field["text"]) <= 2000 for field in facts["fields"])
    assert "Value: $51.20" in [field["text"] for field in facts["fields"]]


def test_a_mail_for_a_scope_value_with_a_line_break_has_a_one_line_subject(tmp_path):
    config = load_config(write_config(tmp_path, [rule([{"email": "ops@example.com"}], scope="model")],
                                      smtp={"host": "127.0.0.1", "port": 25, "from": "llmtap@example.com"}))
    mail = mail_message(firing(config, scope_value="gpt-4o\r\nBcc: victim@example.com"), "llmtap@example.com",
                        ("ops@example.com",))
    assert mail["Subject"] == "[llmtap] firing: daily-spend for model 'gpt-4o Bcc: victim@example.com' — $51.20 " \
                              "past $50.00"
    assert mail["Bcc"] is None


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_email_goes_through_tls_and_auth_with_the_password_from_the_environment(
        tmp_path, start_smtp_receiver, monkeypatch, delivered, tls):
    smtp_with_tls = smtp_server(start_smtp_receiver, monkeypatch, tls)
    log = new_log(tmp_path)
    config = load_config(write_config(tmp_path, [rule([{"email": {"to": ["ops@example.com", "cfo@example.com"]}}])],
                                      smtp=smtp_section(smtp_with_tls)))
    notice = firing(config)
    delivery = delivered(config)
    delivery.submit(notice)

    [mail] = smtp_with_tls.wait_for(1)
    assert mail.tls and mail.login == "alerts"
    assert mail.sender == "llmtap@example.com" and mail.recipients == ["ops@example.com", "cfo@example.com"]
    message = mail.message
    assert message["From"] == "llmtap@example.com" and message["To"] == "ops@example.com, cfo@example.com"
    assert message["Subject"] == "[llmtap] firing: daily-spend — $51.20 past $50.00"
    body = message.get_content()
    assert body.splitlines()[:2] == [notice.summary(), ""]
    for line in ("rule: daily-spend", "metric: spend_usd", "value: $51.20", "threshold: $50.00",
                 "window: day (2026-11-27)", "scope: all"):
        assert line in body.splitlines()
    delivery.close(wait_s=5)
    [row] = alert_rows(log)
    assert row["outcome"] == "sent" and row["target"] == "ops@example.com, cfo@example.com"
    assert row["detail"] == "250 2.0.0 OK queued" and row["attempts"] == 1
    assert SMTP_PASSWORD not in json.dumps(row, default=str)


def test_a_receiver_failing_twice_gets_one_delivery_recorded_as_sent_after_three_attempts(
        tmp_path, webhook_receiver, delivered):
    log = new_log(tmp_path)
    webhook_receiver.fail("/hook", 503, times=2)
    config = load_config(write_config(tmp_path, [rule([{"webhook": webhook_receiver.url()}])],
                                      alerting={"delivery_attempts": 4}))
    delivery = delivered(config)
    delivery.submit(firing(config))

    answered = webhook_receiver.wait_for(3)
    delivery.close(wait_s=5)
    assert [request.status for request in answered] == [503, 503, 200]
    assert len(webhook_receiver.requests()) == 3  # nothing after the one that was taken
    [row] = alert_rows(log)
    assert (row["outcome"], row["detail"], row["attempts"]) == ("sent", "HTTP 200", 3)


def test_a_channel_that_always_fails_is_recorded_as_failed_with_what_it_answered(
        tmp_path, webhook_receiver, delivered, caplog):
    log = new_log(tmp_path)
    webhook_receiver.fail("/down", 500, times=100)
    webhook_receiver.fail("/gone", 404, times=100)
    config = load_config(write_config(tmp_path, [rule([{"webhook": webhook_receiver.url("/down")},
                                                       {"webhook": webhook_receiver.url("/gone")}])]))
    delivery = delivered(config)
    with caplog.at_level(logging.WARNING, logger="llmtap.alerts.delivery"):
        outcomes = delivery.deliver_now(firing(config))

    assert [(o.outcome, o.detail, o.attempts) for o in outcomes] == [
        ("failed", "HTTP 500: failing on purpose: 500", 3),
        ("failed", "HTTP 404: failing on purpose: 404", 1),  # a 404 will not mend: not retried
    ]
    rows = alert_rows(log)
    assert sorted((r["target"], r["outcome"], r["detail"], r["attempts"]) for r in rows) == [
        (webhook_receiver.url("/down"), "failed", "HTTP 500: failing on purpose: 500", 3),
        (webhook_receiver.url("/gone"), "failed", "HTTP 404: failing on purpose: 404", 1)]
    assert (f"alert daily-spend (firing): webhook to {webhook_receiver.url('/down')} failed: HTTP 500: failing on "
            "purpose: 500") in caplog.messages


def test_a_hanging_webhook_holds_up_neither_submit_nor_the_mail_of_the_same_notice(
        tmp_path, webhook_receiver, smtp_with_tls, delivered):
    webhook_receiver.hang("/hook")
    config = load_config(write_config(
        tmp_path, [rule([{"webhook": webhook_receiver.url()}, {"email": {"to": ["ops@example.com"]}}])],
        smtp=smtp_section(smtp_with_tls), alerting={"delivery_timeout_s": 5}))
    delivery = delivered(config)

    started = time.monotonic()
    delivery.submit(firing(config))
    delivery.submit(firing(config, value=60))
    submitted_s = time.monotonic() - started
    mails = smtp_with_tls.wait_for(2, timeout_s=5)
    assert submitted_s < 0.05
    assert mails[1].received_s - started < 2  # not after the webhook's 5 s timeout
    assert len(webhook_receiver.requests("/hook")) == 1  # still hanging on the first


def to_a_hanging_webhook(tmp_path: Path, webhook_receiver: WebhookReceiver) -> tuple[Path, Config, Delivery]:
    """A new log, a config whose rule's one webhook never answers, and Delivery started for it (the test closes it)."""
    log = new_log(tmp_path)
    webhook_receiver.hang("/hook")
    config = load_config(write_config(tmp_path, [rule([{"webhook": webhook_receiver.url()}])],
                                      alerting={"delivery_timeout_s": 30}))
    delivery = Delivery(config.storage_path, config.smtp, config.alerting)
    delivery.start()
    return log, config, delivery


def test_close_records_what_was_left_as_failed_and_returns_in_time(tmp_path, webhook_receiver):
    log, config, delivery = to_a_hanging_webhook(tmp_path, webhook_receiver)
    first, second = firing(config), firing(config, value=70)
    delivery.submit(first)
    delivery.submit(second)
    webhook_receiver.wait_for(1)

    started = time.monotonic()
    delivery.close(wait_s=0.3)
    assert time.monotonic() - started < 2
    rows = alert_rows(log)
    assert sorted((r["alert_id"], r["outcome"], r["detail"]) for r in rows) == sorted(
        [(first.alert_id, "failed", STOPPED), (second.alert_id, "failed", STOPPED)])


def test_a_channel_down_for_long_keeps_a_bounded_backlog_and_records_what_it_gave_up(
        tmp_path, webhook_receiver, monkeypatch):
    monkeypatch.setattr(delivery_module, "BACKLOG_MAX", 5)  # as with 1,000, in a tenth of the time
    log, config, delivery = to_a_hanging_webhook(tmp_path, webhook_receiver)
    notices = [firing(config, value=51 + i) for i in range(delivery_module.BACKLOG_MAX + 3)]
    delivery.submit(notices[0])
    webhook_receiver.wait_for(1)  # the first is being tried; the rest wait
    for notice in notices[1:]:
        delivery.submit(notice)
    delivery.close(wait_s=0)
    outcomes = {row["alert_id"]: row["detail"] for row in alert_rows(log)}
    assert len(outcomes) == len(notices)  # every notice has its row
    assert [outcomes[n.alert_id] for n in notices[1:3]] == [DROPPED, DROPPED]  # the oldest waiting were given up
    assert {outcomes[n.alert_id] for n in notices[3:]} == {STOPPED}


@pytest.mark.parametrize("log_state", ["missing", "not migrated"])
def test_a_log_no_gateway_made_is_neither_created_nor_changed_by_delivery(
        tmp_path, webhook_receiver, caplog, log_state):
    config = load_config(write_config(tmp_path, [rule([{"webhook": webhook_receiver.url()}])]))
    if log_state == "not migrated":  # a DuckDB file of the user's own, say: no `alerts` table
        config.storage_path.parent.mkdir(parents=True)
        with duckdb.connect(str(config.storage_path)) as db:
            db.execute("CREATE TABLE notes (text VARCHAR)")
    delivery = Delivery(config.storage_path, config.smtp, config.alerting)
    with caplog.at_level(logging.WARNING, logger="llmtap.alerts.delivery"):
        assert [o.outcome for o in delivery.deliver_now(firing(config))] == ["sent"]
        delivery.deliver_now(firing(config))
        delivery.close(wait_s=1)
    assert len([m for m in caplog.messages if "alerts are not recorded" in m]) == 1
    if log_state == "missing":
        assert not config.storage_path.exists()
    else:
        with duckdb.connect(str(config.storage_path), read_only=True) as db:
            assert db.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("notes",)]


# --- llmtap alerts test ---------------------------------------------------------------------------------------------

def alerts_test(config_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", "alerts", "test", *args, "--config", str(config_path)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_alerts_test_sends_through_every_channel_and_exits_0_when_all_took_it(
        tmp_path, webhook_receiver, smtp_with_tls):
    log = new_log(tmp_path)
    slack_url = webhook_receiver.url(f"/services/T000/B000/{SLACK_TOKEN}")
    config_path = write_config(tmp_path, [rule([{"webhook": webhook_receiver.url()}, {"slack": slack_url},
                                                {"email": {"to": ["ops@example.com"]}}])],
                               smtp=smtp_section(smtp_with_tls))

    result = alerts_test(config_path, "daily-spend")  # SSL_CERT_FILE and the password env: inherited
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"webhook  {webhook_receiver.url()}  sent  HTTP 200  (1 attempt)",
        f"slack  127.0.0.1:{webhook_receiver.port}/services/T000/…  sent  HTTP 200  (1 attempt)",
        "email  ops@example.com  sent  250 2.0.0 OK queued  (1 attempt)",
    ]
    [hook] = webhook_receiver.wait_for(1, "/hook")
    assert hook.json["kind"] == "test" and hook.json["value"] == 0.0  # nothing spent today in a new log
    [mail] = smtp_with_tls.wait_for(1)
    subject = mail.message["Subject"]  # nothing spent yet: $0 or $0.00, as llmtap writes money
    assert subject.startswith("[llmtap] test: daily-spend — $0") and subject.endswith(" against $50.00")
    rows = alert_rows(log)
    assert sorted((r["channel"], r["kind"], r["outcome"]) for r in rows) == [
        ("email", "test", "sent"), ("slack", "test", "sent"), ("webhook", "test", "sent")]
    everything = result.stdout + result.stderr + json.dumps(rows, default=str)
    assert SLACK_TOKEN not in everything and SMTP_PASSWORD not in everything


def test_alerts_test_exits_1_naming_the_channel_that_failed(tmp_path, webhook_receiver):
    new_log(tmp_path)
    closed = f"http://127.0.0.1:{free_port()}/hook"
    config_path = write_config(tmp_path, [rule([{"webhook": webhook_receiver.url()}, {"webhook": closed}])],
                               alerting={"delivery_attempts": 2})

    result = alerts_test(config_path, "daily-spend", "--json")
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["target"], line["outcome"], line["detail"], line["attempts"]) for line in lines] == [
        (webhook_receiver.url(), "sent", "HTTP 200", 1), (closed, "failed", "connection refused", 2)]
    assert f"webhook to {closed} failed: connection refused" in result.stderr


def test_alerts_test_of_an_unknown_rule_lists_the_rules_and_exits_2(tmp_path, webhook_receiver):
    config_path = write_config(tmp_path, [rule([{"webhook": webhook_receiver.url()}]),
                                          rule([], name="no-channels", action="block")])
    result = alerts_test(config_path, "nightly")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "llmtap alerts test: no rule named 'nightly'; the config's rules: daily-spend, no-channels")
    result = alerts_test(config_path, "no-channels")
    assert result.returncode == 1
    assert "rule 'no-channels' has no channels" in result.stderr
    assert webhook_receiver.requests() == []


def test_outcomes_wait_in_memory_while_the_log_is_busy_and_are_written_later(
        tmp_path, webhook_receiver, caplog, monkeypatch):
    log = new_log(tmp_path)
    config = load_config(write_config(tmp_path, [rule([{"webhook": webhook_receiver.url()}])]))
    monkeypatch.setattr("llmtap.alerts.delivery.WRITE_WAIT_S", 0.2)  # how long a write waits for the file
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; db = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.read()", str(log)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        delivery = Delivery(config.storage_path, config.smtp, config.alerting)
        with caplog.at_level(logging.WARNING, logger="llmtap.alerts.delivery"):
            first = delivery.deliver_now(firing(config))  # the write fails: it must not raise
            second = delivery.deliver_now(firing(config, value=60))
    finally:
        holder.communicate("", timeout=10)
    assert [o.outcome for o in first + second] == ["sent", "sent"]
    assert len([m for m in caplog.messages if "could not record" in m]) == 1  # one warning, not one per write
    delivery.close(wait_s=1)
    assert sorted(row["metric_value"] for row in alert_rows(log)) == [51.2, 60.0]
