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
SIMILAR_KEPT: Final = 4096  # reply words remembered per index (a bounded cache)

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
        self._sizes: list[int] = []
        self._group_of: list[int] = []
        self._postings: dict[str, list[int]] = {}  # stem -> the phrases that have it
        self._typos: dict[str, set[str]] = {}  # a stem, or a stem less one letter -> stems
        self._similar_seen: dict[str, list[tuple[str, float]]] = {}
        for group, phrases in enumerate(groups):
            for text in phrases:
                phrase_stems = stems(text)
                if not phrase_stems:
                    continue
                number = len(self._phrases)
                self._phrases.append(_Phrase(group, text, phrase_stems))
                self._sizes.append(len(phrase_stems))
                self._group_of.append(group)
                for token in phrase_stems:
                    self._postings.setdefault(token, []).append(number)
        for token in self._postings:
            if len(token) >= TYPO_MIN_LENGTH - 1:
                for variant in (token, *_deletions(token)):
                    self._typos.setdefault(variant, set()).add(token)

    @property
    def empty(self) -> bool:
        return not self._phrases

    def _similar(self, token: str) -> list[tuple[str, float]]:
        """The indexed stems a reply stem matches, with their similarity (remembered: customers'
        words repeat, and the deletion look-ups are the costly part of a reply's words)."""
        found = self._similar_seen.get(token)
        if found is None:
            if len(self._similar_seen) >= SIMILAR_KEPT:
                self._similar_seen.clear()
            found = self._similar_seen[token] = self._find_similar(token)
        return found

    def _find_similar(self, token: str) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        exact = token in self._postings
        if exact:
            found.append((token, 1.0))
        if len(token) >= TYPO_MIN_LENGTH - 1:
            seen = {token}
            typos = self._typos
            for variant in (token, *_deletions(token)):
                for candidate in typos.get(variant, ()):
                    if candidate not in seen:
                        seen.add(candidate)
                        if OSA.distance(token, candidate, score_cutoff=1) <= 1:
                            found.append((candidate, TYPO_SIMILARITY))
        return found

    def score(self, text: str, *, complete: bool = False) -> list[Scored]:
        """The groups that share a word with the reply, with their scores, best first; with
        `complete`, the other groups follow with 0 (to show every score)."""
        best = self._groups(text)
        ranked = [Scored(g, round(v, 4)) for g, v in best.items()]
        ranked.sort(key=lambda s: (-s.score, s.key))
        if complete:
            ranked.extend(Scored(g, 0.0) for g in range(self.groups) if g not in best)
        return ranked

    def match(self, text: str, threshold: float, *, complete: bool = False) -> Match:
        """The group a reply chooses: the best one, if it reaches `threshold` and clearly leads.
        `scores` lists every group with `complete`, else the best two."""
        if complete:
            ranked = self.score(text, complete=True)
        else:
            # Only the best two decide: no need to rank every group that shares a word.
            best = self._groups(text)
            ranked = sorted(
                (Scored(g, round(v, 4)) for g, v in _top_two(best)), key=lambda s: (-s.score, s.key)
            )
        if not ranked:
            return Match(None, 0.0, False, [])
        top = ranked[0]
        second = ranked[1].score if len(ranked) > 1 else 0.0
        if top.score <= 0.0 or top.score < threshold:
            return Match(None, top.score, False, ranked)
        if top.score - second < AMBIGUITY_MARGIN:
            return Match(None, top.score, True, ranked)
        return Match(top.key, top.score, False, ranked)

    def _groups(self, text: str) -> dict[int, float]:
        """Each group that shares a word with the reply: its best phrase's score."""
        reply = stems(text)
        content = 0
        # Per phrase: the summed similarity of the reply's words found in it. Stems are distinct
        # on both sides, so an exact word covers one place; a typo may rarely cover two, and the
        # shares are capped at 1 below.
        found: dict[int, float] = {}
        filler_found: dict[int, int] = {}
        postings = self._postings
        for token in reply:
            filler = token in _FILLER_STEMS
            if not filler:
                content += 1
            for candidate, similarity in self._similar(token):
                for phrase in postings[candidate]:
                    found[phrase] = found.get(phrase, 0.0) + similarity
                    if filler:
                        filler_found[phrase] = filler_found.get(phrase, 0) + 1
        best: dict[int, float] = {}
        sizes, group_of = self._sizes, self._group_of
        for phrase, total in found.items():
            size = sizes[phrase]
            recall = total / size if total < size else 1.0
            # Filler words count against a phrase only where it has them too.
            words = content + filler_found.get(phrase, 0) if filler_found else content
            precision = total / words if words and total < words else 1.0
            value = RECALL_WEIGHT * recall + (1 - RECALL_WEIGHT) * precision
            group = group_of[phrase]
            if value > best.get(group, 0.0):
                best[group] = value
        return best

    def phrases_of(self, group: int) -> list[str]:
        """The phrases of one group, as written (those with at least one word)."""
        return [p.text for p in self._phrases if p.group == group]


def _top_two(best: dict[int, float]) -> list[tuple[int, float]]:
    # Two passes in C. Equal scores are ambiguous whichever comes first.
    if not best:
        return []
    first = max(best, key=best.__getitem__)
    top = best.pop(first)
    if not best:
        return [(first, top)]
    second = max(best, key=best.__getitem__)
    return [(first, top), (second, best[second])]


_FILLER_STEMS: Final = frozenset(stem(w) for w in _FILLER)
