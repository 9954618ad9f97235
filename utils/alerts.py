"""Alerts for failed runs, through a Prefect notification block defined here as code.

A flow that fails after its tasks' last retry (or crashes) calls :func:`alert_on_failure`, which sends
the failure to the notification block named ``data-pipelines-alerts`` (override with
``DATA_PIPELINES_ALERT_BLOCK``), which ``python -m tools.alerts register`` saves once per workspace.
Without a block the hook logs a warning and the run's failure is still visible in Prefect.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final, cast

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

from utils.redact import redact_text

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


EPISODES_VARIABLE: Final = "data_pipelines_check_episodes"
"""The Prefect variable holding the volume and schema checks that are not ``ok`` and were alerted."""
_RANK: Final = {"ok": 0, "warn": 1, "fail": 2}


def alert_check_episodes(results: list[dict[str, Any]], checked: list[str]) -> list[str]:
    """Alert each volume or schema check that turned ``warn`` or ``fail``, once per episode.

    ``results`` are checks as ``{pipeline, table, check, state, detail}`` of the pipelines named in
    ``checked``. An episode starts when a check leaves ``ok`` (or goes from ``warn`` to ``fail``) and
    ends when it is ``ok`` again; what is under way is kept in the Prefect variable
    :data:`EPISODES_VARIABLE`, so later runs stay quiet while it lasts. A check whose alert could not
    be sent is not remembered: the next run tries again. Freshness is left out: a stale dataset fails
    the check flow, which alerts through :func:`alert_on_failure`. Returns the subjects sent.
    """
    from prefect.variables import Variable

    known: dict[str, str] = dict(Variable.get(EPISODES_VARIABLE, default=None) or {})
    ongoing = {key: state for key, state in known.items() if key.split("/", 1)[0] not in checked}
    sent: list[str] = []
    for result in results:
        if result["check"] == "freshness" or result["state"] == "ok":
            continue
        key = f"{result['pipeline']}/{result['table']}/{result['check']}"
        if _RANK[result["state"]] <= _RANK.get(known.get(key, "ok"), 0):
            ongoing[key] = known[key]  # the same episode: alerted already
            continue
        # a check of no table: of the source itself (a replication slot), or of the whole dataset
        where = result["table"] or ("source" if result["check"] == "replication_slot" else "dataset")
        subject = f"data-pipelines: {result['pipeline']} {where} {result['check']} {result['state'].upper()}"
        body = (
            f"Pipeline {result['pipeline']}, {'table ' if result['table'] else ''}{where}: the "
            f"{result['check']} check is "
            f"{result['state']}.\n{result['detail']}\nNot repeated while it lasts; see "
            f"`uv run python -m pipelines status {result['pipeline']}` and docs/operations.md (Checks)."
        )
        if send_alert(subject, body):
            ongoing[key] = result["state"]
            sent.append(subject)
    if ongoing != known:
        Variable.set(EPISODES_VARIABLE, ongoing, overwrite=True)
    return sent
