"""Comparing transcripts: a readable rendering of a conversation and a unified diff of two.

The rendering puts every customer line with the outputs that answer it (so interleaved chats
compare equal however their lines fell in time), leaves out `at`, shows multi-line texts as
indented continuation lines and trailing spaces as `·`, so that a diff points at the line of
text that changed:

    [c1] customer  2.
    [c1] bot       Чем помочь?
                   1. Статус заказа
    [c1] file      invoice-4711.pdf | Ваш счёт
    [c1] transfer  slot
"""

from __future__ import annotations

import difflib
from typing import Final

from omnibot.replay.transcript import BotLine, FileLine, Output, Transcript, TransferLine, exchanges

_KIND_WIDTH: Final = 10


def render(transcript: Transcript) -> list[str]:
    """The conversation as lines of text, one block per customer line and its outputs."""
    lines: list[str] = []
    for exchange in exchanges(transcript):
        chat = exchange.customer.chat
        lines += _block(chat, "customer", exchange.customer.customer)
        for output in exchange.outputs:
            lines += _block(chat, *_describe(output))
    return lines


def compare(expected: Transcript, produced: Transcript) -> str | None:
    """None when the conversations are the same; else a unified diff, expected → produced."""
    want, got = render(expected), render(produced)
    if want == got:
        return None
    diff = difflib.unified_diff(want, got, fromfile="expected", tofile="produced", lineterm="", n=3)
    return "\n".join(diff)


def _describe(output: Output) -> tuple[str, str]:
    match output:
        case BotLine(bot=text):
            return "bot", text
        case FileLine(file=file):
            return "file", f"{file.name} | {file.caption}" if file.caption else file.name
        case TransferLine(transfer=transfer):
            return "transfer", transfer.reason
    raise AssertionError(f"not an output: {output!r}")  # unreachable: Output is a closed union


def _block(chat: str, kind: str, text: str) -> list[str]:
    prefix = f"[{chat}] {kind:<{_KIND_WIDTH}}"
    indent = " " * len(prefix)
    if not text.strip():
        return [prefix + repr(text)]
    first, *rest = [_visible(line) for line in text.split("\n")]
    return [prefix + first, *[indent + line for line in rest]]


def _visible(line: str) -> str:
    """Tabs and trailing spaces made visible: a diff must not show two equal-looking lines."""
    line = line.replace("\t", "→")
    body = line.rstrip(" ")
    return body + "·" * (len(line) - len(body))
