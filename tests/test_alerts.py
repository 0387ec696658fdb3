"""Alerts end to end: spend driven through a real gateway with the openai SDK, the alert engine in the gateway
measuring the log, and real receivers (an HTTP server for the webhook and Slack, aiosmtpd with STARTTLS and AUTH for
mail) asserting what each got: one alert per rule, scope value and window, across a restart too; a resolved notice
when a rolling window empties; a hanging webhook that slows no call and is recorded as failed."""

from __future__ import annotations

import time

import openai
import pytest
from llmtap.batch_writer import read_log

CHECK_S = 0.2  # alerting.check_interval_s in these gateways
QUIET_S = 1.0  # several checks: long enough for a second alert to have been sent, were there one
SMTP_USER, SMTP_PASSWORD = "alerts", "s3cret-smtp-password"
CENT = {"model": "gpt-4o", "usage": {"prompt_tokens": 4000, "completion_tokens": 0}}  # $2.50/M input: exactly $0.01


def chat(gateway, user: str = "carol", model: str = "gpt-4o") -> str:
    """One call through the gateway way in; its request id."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "alerts"}], extra_headers={"Helicone-User-Id": user})
    return raw.headers["helicone-id"]


def alerting(**more) -> dict:
    return {"check_interval_s": CHECK_S, "delivery_backoff_s": 0.05, **more}


@pytest.fixture
def mail(start_smtp_receiver):
    return start_smtp_receiver(user=SMTP_USER, password=SMTP_PASSWORD, tls="starttls")


def smtp_config(mail) -> dict:
    return {"host": "127.0.0.1", "port": mail.port, "starttls": True, "from": "llmtap@example.com",
            "user": SMTP_USER, "password_env": "TEST_SMTP_PASSWORD"}


def test_daily_spend_past_its_threshold_reaches_every_channel_exactly_once_even_across_a_restart(
        fresh_gateway, mock_provider, webhook_receiver, mail):
    gateway = fresh_gateway({
        "alerts": [{"name": "daily-spend", "metric": "spend_usd", "window": "day", "threshold": 0.015,
                    "channels": [{"webhook": webhook_receiver.url("/hook")},
                                 {"slack": webhook_receiver.url("/services/T000/B000/XXXSECRET")},
                                 {"email": {"to": "ops@example.com"}}]}],
        "smtp": smtp_config(mail), "alerting": alerting(),
    }, env={"TEST_SMTP_PASSWORD": SMTP_PASSWORD, "SSL_CERT_FILE": str(mail.cert_file)})
    mock_provider.script(CENT, CENT, CENT, CENT)
    first = chat(gateway)
    gateway.row(first)
    time.sleep(QUIET_S)
    assert webhook_receiver.requests() == [] and mail.messages() == []  # $0.01 is within $0.015
    chat(gateway)

    [hook] = webhook_receiver.wait_for(1, path="/hook")
    assert hook.json["rule"] == "daily-spend" and hook.json["kind"] == "firing"
    assert (hook.json["metric"], hook.json["value"], hook.json["threshold"]) == ("spend_usd", 0.02, 0.015)
    assert hook.json["window"] == "day" and hook.json["scope_value"] is None
    assert hook.json["summary"].startswith("llmtap: 'daily-spend': spend over ")
    assert "is $0.02, past the threshold of $0.015" in hook.json["summary"]
    [slack] = webhook_receiver.wait_for(1, path="/services/T000/B000/XXXSECRET")
    assert "daily-spend" in slack.json["text"]
    [message] = mail.wait_for(1)
    assert message.recipients == ["ops@example.com"] and message.login == SMTP_USER and message.tls
    assert "daily-spend" in message.message["Subject"]
    assert "daily-spend" in message.message.get_content()

    rows = wait_for_alert_rows(gateway, 3)
    assert sorted((r["channel"], r["outcome"]) for r in rows) == [("email", "sent"), ("slack", "sent"),
                                                                  ("webhook", "sent")]
    assert all(r["rule"] == "daily-spend" and r["kind"] == "firing" for r in rows)
    assert not any("XXXSECRET" in (r["target"] or "") for r in rows)  # the Slack URL's token is a secret

    chat(gateway)  # more spend the same day: no second alert
    time.sleep(QUIET_S)
    gateway.restart()  # a restart in the middle of the day remembers it has alerted today
    chat(gateway)
    time.sleep(QUIET_S)
    assert len(webhook_receiver.requests("/hook")) == 1 and len(mail.messages()) == 1
    assert len(webhook_receiver.requests("/services/T000/B000/XXXSECRET")) == 1
    assert len(gateway.query("SELECT * FROM alerts")) == 3


def test_a_rolling_window_alert_per_user_fires_for_that_user_and_resolves_when_their_calls_leave_it(
        fresh_gateway, webhook_receiver):
    gateway = fresh_gateway({
        "alerts": [{"name": "burst", "metric": "requests", "window": "3s", "threshold": 2, "scope": "user",
                    "channels": [{"webhook": webhook_receiver.url("/burst")}]}],
        "alerting": alerting(),
    })
    for _ in range(3):
        chat(gateway, user="bob", model="gpt-4o-mini")
    chat(gateway, user="carol", model="gpt-4o-mini")
    [fired] = webhook_receiver.wait_for(1, path="/burst")
    assert (fired.json["kind"], fired.json["scope_value"], fired.json["value"]) == ("firing", "bob", 3)
    assert "for user 'bob'" in fired.json["summary"]
    fired_at = fired.received_s
    resolved = webhook_receiver.wait_for(2, path="/burst", timeout_s=10)[1]
    assert (resolved.json["kind"], resolved.json["scope_value"]) == ("resolved", "bob")
    assert resolved.received_s - fired_at >= 1.5  # bob's calls had to leave the 3 s window first
    assert len(webhook_receiver.requests("/burst")) == 2  # carol never passed 2


def test_a_hanging_webhook_slows_no_call_holds_up_no_other_channel_and_is_recorded_as_failed(
        fresh_gateway, webhook_receiver, smtp_receiver):
    webhook_receiver.hang("/hang")
    gateway = fresh_gateway({
        "alerts": [{"name": "any-call", "metric": "requests", "window": "day", "threshold": 0,
                    "channels": [{"webhook": webhook_receiver.url("/hang")}, {"email": "ops@example.com"}]}],
        "smtp": {"host": "127.0.0.1", "port": smtp_receiver.port, "from": "llmtap@example.com"},
        "alerting": alerting(delivery_timeout_s=1, delivery_attempts=2),
    })
    chat(gateway, model="gpt-4o-mini")
    webhook_receiver.wait_for(1, path="/hang")  # the alert is being delivered to a receiver that never answers
    smtp_receiver.wait_for(1, timeout_s=5)  # the mail of the same alert does not wait for it
    started = time.monotonic()
    for _ in range(5):
        chat(gateway, model="gpt-4o-mini")
    assert time.monotonic() - started < 2.5  # five calls, each as quick as without alerts
    [row] = wait_for_alert_rows(gateway, 1, "channel = 'webhook'", timeout_s=15)
    assert row["outcome"] == "failed" and row["attempts"] == 2 and row["detail"] == "no answer within 1 s"


def wait_for_alert_rows(gateway, count: int, where: str = "true", timeout_s: float = 10) -> list[dict]:
    """The `alerts` rows matching `where`, once there are `count` of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        names, rows = read_log(gateway.db_path, f"SELECT * FROM alerts WHERE {where} ORDER BY created_at")
        if len(rows) >= count or time.monotonic() > deadline:
            return [dict(zip(names, row, strict=True)) for row in rows]
        time.sleep(0.1)
