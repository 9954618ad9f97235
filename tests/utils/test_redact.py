"""Secrets out of text: what ``utils.redact`` removes, and what it leaves readable."""

from __future__ import annotations

from utils.redact import redact_text, redact_url


def test_secret_query_parameters_are_masked_and_the_rest_kept() -> None:
    url = "https://openexchangerates.org/api/latest.json?app_id=s3cr3t&base=USD&HAPIKEY=k3y"
    redacted = redact_url(url)
    assert "s3cr3t" not in redacted and "k3y" not in redacted
    assert redacted == "https://openexchangerates.org/api/latest.json?app_id=***&base=USD&HAPIKEY=***"


def test_bearer_tokens_and_given_secrets_are_removed_empty_ones_ignored() -> None:
    text = "401 for Authorization: Bearer pat-na1-abc.DEF_123 with password hunter2 (user app)"
    redacted = redact_text(text, ["hunter2", None, ""])
    assert redacted == "401 for Authorization: Bearer *** with password *** (user app)"
