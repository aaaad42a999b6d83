"""Turning the playground's views into HTML: the whole page, or its live regions one by one.

Owns the Jinja environment (autoescaping everything, strict about undefined names) and the list
of regions the page updates live. A region is a part of the page that only displays (cases,
the customer's chat, the operator's view, the case's activity, the rules, the faults); the inputs
a person types into are never inside one, so a live update never takes their text or focus away.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import msgspec

from omnibot.sandbox.playground.views import (
    Clocks,
    case_list,
    case_view,
    faults_view,
    mask_url,
    rules_view,
)
from omnibot.sandbox.rules import DEFAULT_WEBHOOK_BODY
from omnibot.sandbox.state import SandboxState

TEMPLATES = Path(__file__).parent / "templates"
REGIONS = ("cases", "customer", "operator", "activity", "rules", "faults")


@dataclass(frozen=True, slots=True)
class Account:
    """What a channel needs from this account, shown with copy buttons."""

    domain: str
    bot_email: str
    api_key: str
    bot_label_id: int
    bot_label_title: str


def rule_body_text() -> str:
    """The body each rule sends (the seed's JSON), as a person would paste it into Omnidesk."""
    return msgspec.json.format(msgspec.json.encode(DEFAULT_WEBHOOK_BODY), indent=2).decode()


class PageRenderer:
    """Renders the page and its regions from the state; one per application."""

    def __init__(self) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,  # every template, whatever its name: a customer's `<script>` is text
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._regions = self._env.get_template("regions.html").module

    def _context(self, state: SandboxState, case_id: int | None) -> dict[str, Any]:
        clocks = Clocks.of(state)
        return {
            "case": case_view(state, case_id, clocks) if case_id is not None else None,
            "case_id": case_id,
            "cases": case_list(state),
            "rules": rules_view(state),
            "faults": faults_view(state, clocks),
        }

    def regions(self, state: SandboxState, case_id: int | None) -> dict[str, str]:
        """Each live region's HTML for the case shown (None: a new chat, nothing chosen yet)."""
        context = self._context(state, case_id)
        return {name: str(getattr(self._regions, name)(context)) for name in REGIONS}

    def page(self, state: SandboxState, case_id: int | None, account: Account) -> str:
        regions = self.regions(state, case_id)
        saved = {rule.on: mask_url(rule.webhook_url) for rule in state.rules}
        return self._env.get_template("page.html").render(
            regions=regions,
            case_id=case_id,
            account=account,
            rule_body=rule_body_text(),
            incoming_saved=saved.get("incoming", ""),
            changed_saved=saved.get("changed", ""),
            require_label=all(rule.require_label for rule in state.rules),
            rules_saved=len(state.rules),
        )
