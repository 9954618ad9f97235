"""The Prefect automations a workspace needs, as code: ``python -m tools.alerts register`` applies them.

A flow run whose machine is lost whole (a reclaimed spot instance, a drained node, a kernel panic)
leaves nobody to report it: no worker proposes ``Crashed`` and no ``on_crashed`` hook runs. Every
deployment's flow runs therefore send a heartbeat event every :data:`HEARTBEAT_SECONDS`
(``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` in ``prefect.yaml``'s job variables, rendered from this
constant), and two automations act on their absence (Prefect's "Detect zombie flows" guide):

- :func:`zombie_automation`: after each heartbeat of a ``dlt``-tagged run, expect another heartbeat
  or a final state within :data:`ZOMBIE_AFTER_SECONDS`; when none comes, the run is set ``Crashed``
  with :data:`ZOMBIE_MESSAGE`. ``Crashed`` releases the deployment's concurrency slot; the run's
  single-flight lease has already expired by then (``utils/orchestration.py``, ``LEASE_SECONDS``).
- :func:`zombie_alert_automation`: each ``Crashed`` transition carrying that message sends the
  failure alert through the notification block, once (the dead run's own hooks cannot).

Only runs tagged ``dlt`` (every deployment in ``prefect.yaml``) are watched: runs of other flows in
a shared workspace heartbeat at Prefect's default 180 s and would be crashed by a 180 s window.
``expect`` names the heartbeat and the final states rather than every ``prefect.flow-run.*`` event:
a ``Running`` event counted as the expected one would leave the window satisfied, and a run lost
before the next window opened would never be crashed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

HEARTBEAT_SECONDS: Final = 60
"""How often every deployment's flow runs send ``prefect.flow-run.heartbeat`` (Prefect's minimum is 30,
its default 180): one small event a minute per running flow."""
MISSED_HEARTBEATS: Final = 3
"""Heartbeats that may go missing (an API blip, a slow event) before a run counts as lost."""
ZOMBIE_AFTER_SECONDS: Final = HEARTBEAT_SECONDS * MISSED_HEARTBEATS
"""A run that has sent no heartbeat (and reached no final state) for this long is marked ``Crashed``.
The server checks proactive triggers every 5 s (``PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY``), so
a lost run is ``Crashed`` at most about 185 s after its last heartbeat, which is at most 185 s after
the loss: inside the 5-minute bound, with room for the event pipeline's own lag."""
ZOMBIE_MESSAGE: Final = "No heartbeat from this flow run: its machine or process was lost (data-pipelines)."
"""The state message the zombie automation sets; the alert automation matches on it."""
WATCHED_TAG: Final = "dlt"
"""Every deployment generated from the declarations carries it (``tools/deployments.py``)."""
ZOMBIE_AUTOMATION: Final = "data-pipelines: crash runs that stopped heartbeating"
ZOMBIE_ALERT_AUTOMATION: Final = "data-pipelines: alert on runs crashed for missing heartbeats"
FINAL_STATES: Final = ("Completed", "Failed", "Cancelled", "Crashed")


def _tagged() -> ResourceSpecification:
    """Events related to the watched tag: heartbeats and state changes both list the run's tags."""
    return ResourceSpecification(
        {"prefect.resource.id": f"prefect.tag.{WATCHED_TAG}", "prefect.resource.role": "tag"}
    )


def zombie_automation(zombie_after_seconds: float = ZOMBIE_AFTER_SECONDS) -> AutomationCore:
    """Mark a watched run ``Crashed`` once its heartbeats have stopped for ``zombie_after_seconds``."""
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=(
            f"A dlt flow run that sent no heartbeat for {zombie_after_seconds:.0f} s is marked Crashed"
            " (tools/automations.py)."
        ),
        enabled=True,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{s}" for s in FINAL_STATES)},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=zombie_after_seconds),
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=_tagged(),
        ),
        actions=[ChangeFlowRunState(name=None, state=StateType.CRASHED, message=ZOMBIE_MESSAGE, force=False)],
    )


def zombie_alert_automation(block_document_id: UUID) -> AutomationCore:
    """Send the failure alert, once, for each run the zombie automation crashed."""
    match = ResourceSpecification(
        {"prefect.resource.id": "prefect.flow-run.*", "prefect.state-message": ZOMBIE_MESSAGE}
    )
    return AutomationCore(
        name=ZOMBIE_ALERT_AUTOMATION,
        description="The alert a lost run cannot send itself (tools/automations.py).",
        enabled=True,
        trigger=EventTrigger(
            expect={"prefect.flow-run.Crashed"},
            match=match,
            match_related=_tagged(),
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(
                block_document_id=block_document_id,
                subject="data-pipelines: flow {{ flow.name }} crashed",
                body=(
                    "Flow run {{ flow_run.name }} ({{ flow_run.id }}) of {{ flow.name }} ended Crashed."
                    "\nDeployment: {{ deployment.name }}"
                    "\nReason: {{ flow_run.state.message }}"
                ),
            )
        ],
    )


def apply(automations: list[AutomationCore]) -> list[UUID]:
    """Create each automation, or replace the one of the same name: running it twice changes nothing."""
    ids = []
    with get_client(sync_client=True) as client:
        for automation in automations:
            existing = client.read_automations_by_name(automation.name)
            if existing:
                first, *extra = existing
                client.update_automation(first.id, automation)
                for duplicate in extra:
                    client.delete_automation(duplicate.id)
                ids.append(first.id)
            else:
                ids.append(client.create_automation(automation))
    return ids
