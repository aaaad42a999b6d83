"""The text conventions of Omnidesk's chat, both ways. Pure.

Omnidesk's chat shows a customer's files as a block after the text
(`text\n—————\nВложенные файлы:\nurl\nurl`) and has no buttons, so a menu is sent as a numbered
list and the customer answers with a number or a title. `message_text` builds the block from a
message read back from Omnidesk, `parse_client_message` splits it off again, `render_menu` and
`match_button` are the two sides of a menu.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any, Final

from omnibot.agents.agent import Button

_BLOCK_START: Final = "\n—————\nВложенные файлы:\n"  # how Omnidesk writes it
_HEADER_LINE: Final = "вложенные файлы:"  # how it is recognised (any case)
_TAG: Final = re.compile(r"<[^>]+>")
_SEPARATOR: Final = re.compile(r"[—–\-_=]{3,}")
_NUMBER_REPLY: Final = re.compile(r"(\d+)\s*[.)]?")
_NUMBERED_TITLE: Final = re.compile(r"(\d+)\s*[.)]\s*(.+)", re.DOTALL)


def parse_client_message(text: str) -> tuple[str, list[str]]:
    """Split a customer message into its text and the urls of its attachment block.

    Omnidesk appends files as `{text}\\n—————\\nВложенные файлы:\\n{url}\\n{url}`. The text comes
    back stripped; a message that is only files gives "". Tolerates \\r\\n, a missing separator
    line, blank lines and surrounding spaces. A message without a block is returned as it is
    (stripped), with no urls.
    """
    if "ложенные" not in text and "ЛОЖЕННЫЕ" not in text:  # fast path: no block
        return text.strip(), []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip().lower() != _HEADER_LINE:
            continue
        rest = [line.strip() for line in lines[i + 1 :] if line.strip()]
        if not all(_looks_like_url(line) for line in rest):
            return text.strip(), []  # words after the header: the customer wrote it themselves
        body = lines[:i]
        while body and not body[-1].strip():
            body.pop()
        if body and _SEPARATOR.fullmatch(body[-1].strip()):
            body.pop()
        return "\n".join(body).strip(), rest
    return text.strip(), []


def without_block(text: str, urls: Sequence[str]) -> str:
    """The customer's words of a message whose files are known (`message_text` built `text`):
    only the block made of exactly those urls is split off; one the customer typed stays text."""
    block = _BLOCK_START + "\n".join(urls)
    if urls and text.endswith(block):
        text = text[: -len(block)]
    return text.strip()


def _looks_like_url(line: str) -> bool:
    return line.startswith(("http://", "https://")) and " " not in line


def _title(button: Button | str) -> str:
    return button if isinstance(button, str) else button.title


def render_menu(text: str, buttons: Sequence[Button | str]) -> str:
    """A button menu as Omnidesk can show it: the text, then the buttons as a numbered list."""
    items = [f"{i}. {_title(b)}" for i, b in enumerate(buttons, 1)]
    return "\n".join([text, *items] if text.strip() else items)


def match_button(reply: str, buttons: Sequence[Button | str]) -> int | None:
    """The index of the button a reply chooses, or None.

    Accepts the number (`2`, `2.`, `2)`, ` 2 `), the title (case-insensitive, trimmed), or a line
    copied from the menu (`2. Оператор`) when number and title agree.
    """
    reply = reply.strip()
    titles = [_title(b).strip().casefold() for b in buttons]
    number = _NUMBER_REPLY.fullmatch(reply)
    if number is not None:
        index = int(number.group(1)) - 1
        return index if 0 <= index < len(titles) else None
    wanted = reply.casefold()
    if wanted in titles:
        return titles.index(wanted)
    copied = _NUMBERED_TITLE.fullmatch(reply)
    if copied is not None:
        index = int(copied.group(1)) - 1
        if 0 <= index < len(titles) and titles[index] == copied.group(2).strip().casefold():
            return index
    return None


def attachment_urls(message: dict[str, Any]) -> list[str]:
    """The urls of a message's files as Omnidesk's API lists them (`attachments[].url`)."""
    return [
        str(a.get("url")) for a in message.get("attachments") or [] if isinstance(a, dict) and a.get("url")
    ]


def message_text(message: dict[str, Any]) -> str:
    """The customer's words as the chat shows them: content (or content_html), then their files."""
    content = str(message.get("content") or "")
    if not content.strip() and message.get("content_html"):
        markup = str(message["content_html"]).replace("<br>", "\n").replace("</p><p>", "\n\n")
        content = html.unescape(_TAG.sub("", markup))
    urls = attachment_urls(message)
    if urls:
        content = content + _BLOCK_START + "\n".join(urls)
    return content


def looks_like_menu_line(reply: str) -> bool:
    """A reply written like a line of the numbered menu (`2. Оператор`, `3) ...`): its number
    decides, so free-text matching leaves it alone."""
    return _NUMBERED_TITLE.fullmatch(reply.strip()) is not None
