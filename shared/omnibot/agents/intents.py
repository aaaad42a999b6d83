"""Intent recognition for the `intent` slot: which named intent a customer's message expresses.

Deterministic and offline: an intent is its examples, and a message's confidence for an intent
is the best score of the message against one of them (`matching.PhraseIndex`: stems, typos, word
order free). The model is built once per slot when an agent is loaded; classifying a message costs
a few dictionary look-ups per word. The winner must reach the slot's threshold and lead the
runner-up clearly, else the message goes to the slot's fallback.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from omnibot.agents.matching import AMBIGUITY_MARGIN, PhraseIndex


class IntentScore(msgspec.Struct, frozen=True):
    name: str
    score: float


class IntentMatch(msgspec.Struct, frozen=True):
    """The recognised intent (None: below the threshold, or ambiguous) and every intent's score."""

    intent: str | None
    confidence: float
    ambiguous: bool
    scores: list[IntentScore]


class IntentModel:
    """The intents of one slot, indexed once."""

    def __init__(self, intents: Sequence[tuple[str, Sequence[str]]]) -> None:
        self.names = [name for name, _ in intents]
        self._index = PhraseIndex([examples for _, examples in intents])

    def classify(self, text: str, threshold: float, *, complete: bool = False) -> IntentMatch:
        """`scores` has the intents that share a word with the text, or all with `complete`."""
        found = self._index.match(text, threshold, complete=complete)
        scores = [IntentScore(self.names[s.key], s.score) for s in found.scores]
        name = None if found.winner is None else self.names[found.winner]
        return IntentMatch(name, found.score, found.ambiguous, scores)

    def overlaps(self, threshold: float) -> list[tuple[str, str, str]]:
        """(intent, other intent, example): examples of one intent that another intent claims as
        much (a confidence at least `threshold` and not clearly below the intent's own)."""
        found: list[tuple[str, str, str]] = []
        for group, name in enumerate(self.names):
            for example in self._index.phrases_of(group):
                ranked = self._index.score(example)
                own = next((s.score for s in ranked if s.key == group), 0.0)
                for other in ranked:
                    if (
                        other.key != group
                        and other.score >= threshold
                        and own - other.score < AMBIGUITY_MARGIN
                    ):
                        found.append((name, self.names[other.key], example))
        return found
