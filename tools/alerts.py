"""Set a Prefect workspace up: the alert notification block failed runs send through
(``utils/alerts.py``) and every automation (``tools/automations.py``). CD runs ``register``.

    uv run python -m tools.alerts register --slack-webhook-url https://hooks.slack.com/services/...
    uv run python -m tools.alerts register --webhook-url https://alerts.example.org/hook
    uv run python -m tools.alerts test      # sends a test alert

``register`` is idempotent: it replaces the block and each automation of the same name. E-mail works
the same way through a Prefect e-mail or Apprise block saved under the block's name.
"""

from __future__ import annotations

import argparse
import sys
from typing import cast
from uuid import UUID

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

from tools import automations
from utils.alerts import block_name, send_alert


def register(
    url: str,
    *,
    slack: bool,
    overwrite: bool = True,
    zombie_after_seconds: float = automations.ZOMBIE_AFTER_SECONDS,
) -> None:
    """Save the alert notification block (Slack webhook or generic JSON webhook), then apply every
    automation: lost runs are marked Crashed and alerted on through that block."""
    block_id = save_block(url, slack=slack, overwrite=overwrite)
    automations.apply(
        [
            automations.zombie_automation(zombie_after_seconds),
            automations.zombie_alert_automation(block_id),
        ]
    )


def save_block(url: str, *, slack: bool, overwrite: bool = True) -> UUID:
    """Save the alert notification block and return its document id."""
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
    return cast(UUID, block.save(block_name(), overwrite=overwrite))


MIN_HEARTBEAT_SECONDS = 30
"""Prefect's shortest flow-run heartbeat."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.alerts", description="Alert notification block")
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="create or replace the alert notification block")
    target = reg.add_mutually_exclusive_group(required=True)
    target.add_argument("--slack-webhook-url")
    target.add_argument("--webhook-url")
    reg.add_argument(
        "--zombie-after",
        type=float,
        default=automations.ZOMBIE_AFTER_SECONDS,
        metavar="SECONDS",
        help=(
            "mark a run Crashed after this long without a heartbeat (default %(default).0f: "
            f"{automations.MISSED_HEARTBEATS} x the {automations.HEARTBEAT_SECONDS} s heartbeat of "
            "prefect.yaml)"
        ),
    )
    reg.add_argument(
        "--heartbeat",
        type=float,
        default=automations.HEARTBEAT_SECONDS,
        metavar="SECONDS",
        help="the heartbeat of the watched runs (default %(default).0f: prefect.yaml's); --zombie-after "
        "must cover at least two, or a heartbeat that arrives a little late crashes a healthy run",
    )
    sub.add_parser("test", help="send a test alert through the registered block")
    args = parser.parse_args(argv)
    if args.command == "register":
        if args.heartbeat < MIN_HEARTBEAT_SECONDS:
            parser.error(f"--heartbeat must be at least {MIN_HEARTBEAT_SECONDS} s (Prefect's shortest)")
        if args.zombie_after < 2 * args.heartbeat:
            least, beat = f"{2 * args.heartbeat:.0f}", f"{args.heartbeat:.0f}"
            parser.error(f"--zombie-after must be at least {least} s (two {beat} s heartbeats)")
        register(
            args.slack_webhook_url or args.webhook_url,
            slack=bool(args.slack_webhook_url),
            zombie_after_seconds=args.zombie_after,
        )
        print(f"registered notification block {block_name()!r}")
        names = (automations.ZOMBIE_AUTOMATION, automations.ZOMBIE_ALERT_AUTOMATION)
        print("applied automations " + ", ".join(repr(n) for n in names))
        return 0
    sent = send_alert("data-pipelines: test alert", "If you can read this, failed runs will reach you.")
    print("sent" if sent else f"not sent: register the block {block_name()!r} first", file=sys.stderr)
    return 0 if sent else 1


if __name__ == "__main__":
    sys.exit(main())
