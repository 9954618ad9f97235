"""Register and test the alert notification block that failed runs send through (``utils/alerts.py``).

    uv run python -m tools.alerts register --slack-webhook-url https://hooks.slack.com/services/...
    uv run python -m tools.alerts register --webhook-url https://alerts.example.org/hook
    uv run python -m tools.alerts test      # sends a test alert

E-mail works the same way through a Prefect e-mail or Apprise block saved under the block's name.
"""

from __future__ import annotations

import argparse
import sys

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

from utils.alerts import block_name, send_alert


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
    parser = argparse.ArgumentParser(prog="python -m tools.alerts", description="Alert notification block")
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
