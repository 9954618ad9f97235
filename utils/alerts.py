"""Alerts for failed runs, through a Prefect notification block defined here as code.

A flow that fails after its tasks' last retry (or crashes) calls :func:`alert_on_failure`, which sends
the failure to the notification block named ``data-pipelines-alerts`` (override with
``DATA_PIPELINES_ALERT_BLOCK``). Point it at Slack, e-mail or any webhook once per workspace::

    uv run python -m utils.alerts register --slack-webhook-url https://hooks.slack.com/services/...
    uv run python -m utils.alerts register --webhook-url https://alerts.example.org/hook
    uv run python -m utils.alerts test      # sends a test alert

Without a block the hook logs a warning and the run's failure is still visible in Prefect.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Final, cast

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

from utils.http import redact_text

logger = logging.getLogger("data_pipelines.alerts")

DEFAULT_BLOCK_NAME: Final = "data-pipelines-alerts"
MAX_MESSAGE_CHARS: Final = 2000


def block_name() -> str:
    return os.environ.get("DATA_PIPELINES_ALERT_BLOCK", DEFAULT_BLOCK_NAME)


def load_block() -> NotificationBlock | None:
    """The configured notification block, or ``None`` if none is registered."""
    for block_type in (SlackWebhook, CustomWebhookNotificationBlock):
        try:
            return cast(NotificationBlock, block_type.load(block_name()))
        except ValueError:
            continue
    return None


def send_alert(subject: str, body: str) -> bool:
    """Send an alert; returns False (and logs why) when no block is configured or sending fails."""
    block = load_block()
    if block is None:
        logger.warning("no notification block %r is registered; alert not sent: %s", block_name(), subject)
        return False
    try:
        cast(Any, block).notify(body=redact_text(body)[:MAX_MESSAGE_CHARS], subject=subject)
    except Exception as exc:  # an alert must never mask the failure it reports
        logger.error("sending the alert %r failed: %s", subject, type(exc).__name__)
        return False
    return True


def alert_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure``/``on_crashed`` hook: send what failed, where, and why."""
    ui = os.environ.get("PREFECT_UI_URL", "").rstrip("/")
    link = f"\n{ui}/runs/flow-run/{flow_run.id}" if ui else ""
    subject = f"data-pipelines: flow {flow.name} {state.name.lower()}"
    body = (
        f"Flow run {flow_run.name} ({flow_run.id}) of {flow.name} ended {state.name}."
        f"\nDeployment: {flow_run.deployment_id or 'none (run by hand)'}"
        f"\nReason: {state.message or 'no message'}{link}"
    )
    send_alert(subject, body)


def register(url: str, *, slack: bool, overwrite: bool = True) -> None:
    """Save the alert notification block (Slack webhook or generic JSON webhook)."""
    block: NotificationBlock
    if slack:
        block = SlackWebhook(url=url)  # type: ignore[arg-type]
    else:
        block = CustomWebhookNotificationBlock(
            name=block_name(),
            url=url,
            json_data={"subject": "{{subject}}", "text": "{{body}}", "source": "data-pipelines"},
            headers=None,
            cookies=None,
        )
    block.save(block_name(), overwrite=overwrite)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.alerts", description="Alert notification block")
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="create or replace the alert notification block")
    target = reg.add_mutually_exclusive_group(required=True)
    target.add_argument("--slack-webhook-url")
    target.add_argument("--webhook-url")
    sub.add_parser("test", help="send a test alert through the registered block")
    args = parser.parse_args(argv)
    if args.command == "register":
        register(args.slack_webhook_url or args.webhook_url, slack=bool(args.slack_webhook_url))
        print(f"registered notification block {block_name()!r}")
        return 0
    sent = send_alert("data-pipelines: test alert", "If you can read this, failed runs will reach you.")
    print("sent" if sent else f"not sent: register the block {block_name()!r} first", file=sys.stderr)
    return 0 if sent else 1


if __name__ == "__main__":
    sys.exit(main())
