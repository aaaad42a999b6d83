"""An agent prepared for running: everything free-text matching needs, built once per version.

A published agent version is shared by every chat that uses it, so what can be computed from the
file alone is computed here once, when the engine first meets the agent object: the phrase index of
every menu (titles and synonyms), the intent model of every `intent` slot, the parsed working
hours, how much chat history the `llm` slots need. A menu whose titles are templates is indexed
when its rendered titles are first seen (a small cache). Pure.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING

from omnibot.agents.hours import Schedule, parse_schedule
from omnibot.agents.intents import IntentModel
from omnibot.agents.matching import PhraseIndex

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
        self.intents: dict[str, IntentModel] = {}
        history = 0
        for slot in agent.slots:
            if isinstance(slot, ButtonMenuSlot):
                if not any("{{" in b.title for b in slot.buttons):
                    self._menus[slot.id] = _menu_groups(
                        tuple(b.title for b in slot.buttons), tuple(tuple(b.synonyms) for b in slot.buttons)
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

    def menu(self, slot: ButtonMenuSlot, titles: list[str]) -> PhraseIndex:
        """The phrase index of a menu, for its titles as rendered this turn."""
        index = self._menus.get(slot.id)
        if index is not None:
            return index
        return _templated_menu(tuple(titles), tuple(tuple(b.synonyms) for b in slot.buttons))

    def within_working_hours(self, now: datetime) -> bool:
        """True without `working_hours`: an agent that names none is always open."""
        return True if self.schedule is None else self.schedule.is_open(now)
