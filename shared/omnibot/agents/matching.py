"""Free-text matching of a customer's words against short phrases (button titles, intent examples).

Pure and deterministic. A phrase is reduced to a set of stems: case-folded, `ё` read as `е`,
punctuation dropped, each word stemmed by Snowball (Russian for Cyrillic words, English for Latin
ones). Word order does not matter. A word of at least `TYPO_MIN_LENGTH` letters also matches a
stem one edit away (a typo: a letter wrong, missing, extra, or two swapped), at a lower
similarity. All the work that does not depend on the reply is done once, in `PhraseIndex` (an
inverted index from stem to phrases, and a deletion index for typos), so matching a reply costs a
few dictionary look-ups per word, whatever the number of phrases.

The score of a reply against one phrase is in 0..1: mostly how much of the phrase the reply covers,
partly how much of the reply the phrase explains (words such as "хочу", "please" are not held
against it). A group of phrases (a button's title and synonyms, an intent's examples) scores its
best phrase. The best group wins only when it reaches the threshold and is clearly ahead of the
second; otherwise the answer is "ambiguous".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec
import snowballstemmer  # type: ignore[import-untyped]
from rapidfuzz.distance import OSA

TYPO_MIN_LENGTH: Final = 5  # shorter words must be spelled right: one edit changes them too much
TYPO_SIMILARITY: Final = 0.85
RECALL_WEIGHT: Final = 0.6
# The winner must lead the runner-up by this much, or the reply is ambiguous.
AMBIGUITY_MARGIN: Final = 0.1

_WORD: Final = re.compile(r"[^\W_]+", re.UNICODE)
_CYRILLIC: Final = re.compile(r"[а-я]")
# Words that carry no choice: extra ones in a reply do not lower its score.
_FILLER: Final = frozenset(
    """
    а ах бы в вас вам вы да для же и из к как ли мне меня мы на не ну о об от по пожалуйста
    привет просто с спасибо так то у уже хочу хотел хотела хотим хотелось я здравствуйте добрый день
    можно подскажите скажите
    a an and are can could hello hi i i'd is it me my of on please the to want would you
    """.split()  # noqa: SIM905 -- a word list reads better as text
)
_STEMMERS: Final = {
    "ru": snowballstemmer.stemmer("russian"),
    "en": snowballstemmer.stemmer("english"),
}


class Scored(msgspec.Struct, frozen=True):
    """One group's score for a reply."""

    key: int  # the group's index (button index, intent index)
    score: float


class Match(msgspec.Struct, frozen=True):
    """The outcome of matching one reply: the winner (or None) and every group's score, best first."""

    winner: int | None
    score: float
    ambiguous: bool
    scores: list[Scored]


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball stem of one normalised word (Russian or English by its letters)."""
    lang = "ru" if _CYRILLIC.search(word) else "en"
    return str(_STEMMERS[lang].stemWord(word))


def words(text: str) -> list[str]:
    """The words of a text: case-folded, `ё` as `е`, punctuation dropped."""
    return _WORD.findall(text.casefold().replace("ё", "е"))


def stems(text: str) -> tuple[str, ...]:
    """The distinct stems of a text, in order of first appearance."""
    seen: dict[str, None] = {}
    for word in words(text):
        seen.setdefault(stem(word), None)
    return tuple(seen)


def _deletions(token: str) -> list[str]:
    return [token[:i] + token[i + 1 :] for i in range(len(token))]


class _Phrase(msgspec.Struct, frozen=True):
    group: int
    text: str
    stems: tuple[str, ...]


class PhraseIndex:
    """Phrases grouped under keys, indexed once for fast scoring of many replies."""

    def __init__(self, groups: Sequence[Iterable[str]]) -> None:
        self.groups = len(groups)
        self._phrases: list[_Phrase] = []
        self._postings: dict[str, list[tuple[int, int]]] = {}  # stem -> (phrase, position)
        self._typos: dict[str, set[str]] = {}  # a stem, or a stem less one letter -> stems
        for group, phrases in enumerate(groups):
            for text in phrases:
                phrase_stems = stems(text)
                if not phrase_stems:
                    continue
                number = len(self._phrases)
                self._phrases.append(_Phrase(group, text, phrase_stems))
                for position, token in enumerate(phrase_stems):
                    self._postings.setdefault(token, []).append((number, position))
        for token in self._postings:
            if len(token) >= TYPO_MIN_LENGTH - 1:
                for variant in (token, *_deletions(token)):
                    self._typos.setdefault(variant, set()).add(token)

    @property
    def empty(self) -> bool:
        return not self._phrases

    def _similar(self, token: str) -> dict[str, float]:
        """The indexed stems a reply stem matches, with their similarity."""
        found: dict[str, float] = {}
        if token in self._postings:
            found[token] = 1.0
        if len(token) >= TYPO_MIN_LENGTH - 1:
            for variant in (token, *_deletions(token)):
                for candidate in self._typos.get(variant, ()):
                    if candidate not in found and OSA.distance(token, candidate, score_cutoff=1) <= 1:
                        found[candidate] = TYPO_SIMILARITY
        return found

    def score(self, text: str) -> list[Scored]:
        """Every group's score for a reply (groups with no common word score 0), best first."""
        reply = stems(text)
        if not reply:
            return [Scored(g, 0.0) for g in range(self.groups)]
        content = sum(1 for token in reply if token not in _FILLER_STEMS)
        # phrase -> best similarity per phrase position, and per reply word
        covered: dict[int, dict[int, float]] = {}
        explained: dict[int, dict[int, float]] = {}
        for r, token in enumerate(reply):
            for candidate, similarity in self._similar(token).items():
                for phrase, position in self._postings[candidate]:
                    cover = covered.setdefault(phrase, {})
                    if cover.get(position, 0.0) < similarity:
                        cover[position] = similarity
                    explain = explained.setdefault(phrase, {})
                    if explain.get(r, 0.0) < similarity:
                        explain[r] = similarity
        best = [0.0] * self.groups
        for phrase, cover in covered.items():
            info = self._phrases[phrase]
            recall = sum(cover.values()) / len(info.stems)
            explain = explained[phrase]
            filler_matched = sum(1 for r in explain if reply[r] in _FILLER_STEMS)
            precision = sum(explain.values()) / max(1, content + filler_matched)
            value = RECALL_WEIGHT * recall + (1 - RECALL_WEIGHT) * min(1.0, precision)
            if value > best[info.group]:
                best[info.group] = value
        ranked = [Scored(g, round(s, 4)) for g, s in enumerate(best)]
        ranked.sort(key=lambda s: (-s.score, s.key))
        return ranked

    def match(self, text: str, threshold: float) -> Match:
        """The group a reply chooses: the best one, if it reaches `threshold` and clearly leads."""
        ranked = self.score(text)
        if not ranked:
            return Match(None, 0.0, False, [])
        top = ranked[0]
        second = ranked[1].score if len(ranked) > 1 else 0.0
        if top.score <= 0.0 or top.score < threshold:
            return Match(None, top.score, False, ranked)
        if top.score - second < AMBIGUITY_MARGIN:
            return Match(None, top.score, True, ranked)
        return Match(top.key, top.score, False, ranked)

    def phrases_of(self, group: int) -> list[str]:
        """The phrases of one group, as written (those with at least one word)."""
        return [p.text for p in self._phrases if p.group == group]


_FILLER_STEMS: Final = frozenset(stem(w) for w in _FILLER)
