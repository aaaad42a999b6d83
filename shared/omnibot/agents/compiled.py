"""An agent prepared for running: everything free-text matching needs, built once per version.

A published agent version is shared by every chat that uses it, so what can be computed from the
file alone is computed here once, when the engine first meets the agent object: the phrase index of
every menu (titles and synonyms), the intent model of every `intent` slot, the parsed working
hours, how much chat history the `llm` slots need. A menu whose titles are templates is indexed
when its rendered titles are first seen (a small cache). Pure.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from omnibot.agents.chat_text import render_menu
from omnibot.agents.hours import Schedule, parse_schedule
from omnibot.agents.intents import IntentModel
from omnibot.agents.matching import PhraseIndex
from omnibot.agents.templates import render

if TYPE_CHECKING:
    from omnibot.agents.agent import Agent, ButtonMenuSlot


def _menu_groups(titles: tuple[str, ...], synonyms: tuple[tuple[str, ...], ...]) -> PhraseIndex:
    return PhraseIndex([(title, *more) for title, more in zip(titles, synonyms, strict=True)])


@functools.lru_cache(maxsize=1024)
def _templated_menu(titles: tuple[str, ...], synonyms: tuple[tuple[str, ...], ...]) -> PhraseIndex:
    return _menu_groups(titles, synonyms)


class CompiledAgent:
    def __init__(self, agent: Agent) -> None:
        from omnibot.agents.agent import ButtonMenuSlot, IntentSlot, LLMSlot  # it imports this module

        self._menus: dict[str, PhraseIndex] = {}
        self._titles: dict[str, list[str]] = {}  # menus without placeholders in their titles
        self._menu_texts: dict[str, str] = {}  # ... and in their text
        self.intents: dict[str, IntentModel] = {}
        history = 0
        for slot in agent.slots:
            if isinstance(slot, ButtonMenuSlot):
                if not any("{{" in b.title for b in slot.buttons):
                    titles = [b.title for b in slot.buttons]
                    self._titles[slot.id] = titles
                    if "{{" not in slot.text:
                        self._menu_texts[slot.id] = render_menu(slot.text, titles)
                    self._menus[slot.id] = _menu_groups(
                        tuple(titles), tuple(tuple(b.synonyms) for b in slot.buttons)
                    )
            elif isinstance(slot, IntentSlot):
                self.intents[slot.id] = IntentModel([(i.name, i.examples) for i in slot.intents])
            elif isinstance(slot, LLMSlot):
                history = max(history, slot.history)
        # Each exchange is the customer's message and the bot's answer to it.
        self.history_kept = 2 * history
        hours = agent.working_hours
        self.schedule: Schedule | None = (
            None if hours is None else parse_schedule(hours.timezone, hours.days, hours.holidays)
        )

    def titles(self, slot: ButtonMenuSlot, env: Mapping[str, Any]) -> list[str]:
        """A menu's button titles as rendered this turn (the same list each turn if static)."""
        static = self._titles.get(slot.id)
        return static if static is not None else [render(b.title, env) for b in slot.buttons]

    def menu_text(self, slot: ButtonMenuSlot, env: Mapping[str, Any]) -> str:
        """A menu's text and numbered buttons, as sent."""
        static = self._menu_texts.get(slot.id)
        return static if static is not None else render_menu(render(slot.text, env), self.titles(slot, env))

    def menu(self, slot: ButtonMenuSlot, titles: list[str]) -> PhraseIndex:
        """The phrase index of a menu, for its titles as rendered this turn."""
        index = self._menus.get(slot.id)
        if index is not None:
            return index
        return _templated_menu(tuple(titles), tuple(tuple(b.synonyms) for b in slot.buttons))

    def within_working_hours(self, now: datetime) -> bool:
        """True without `working_hours`: an agent that names none is always open."""
        return True if self.schedule is None else self.schedule.is_open(now)
