"""``python -m tools.alerts register`` refuses a zombie window that a late heartbeat could fall into."""

from __future__ import annotations

import pytest

from tools import alerts, automations

ZOMBIE_WINDOW = automations.ZOMBIE_AFTER_SECONDS


@pytest.mark.parametrize(
    ("options", "outcome"),
    [
        ([], ZOMBIE_WINDOW),
        (["--zombie-after", "60"], "at least 120 s (two 60 s heartbeats)"),
        (["--zombie-after", "60", "--heartbeat", "30"], 60.0),
        (["--zombie-after", "50", "--heartbeat", "30"], "at least 60 s (two 30 s heartbeats)"),
        (["--heartbeat", "10"], "--heartbeat must be at least 30 s"),
    ],
)
def test_the_zombie_window_covers_two_heartbeats(
    options: list[str],
    outcome: float | str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registered: list[float] = []

    def register(url: str, *, slack: bool, zombie_after_seconds: float) -> None:
        registered.append(zombie_after_seconds)

    monkeypatch.setattr(alerts, "register", register)
    argv = ["register", "--webhook-url", "http://127.0.0.1:9/hook", *options]
    if isinstance(outcome, float | int):
        assert alerts.main(argv) == 0
        assert registered == [outcome]
    else:
        with pytest.raises(SystemExit):
            alerts.main(argv)
        assert outcome in capsys.readouterr().err and not registered
