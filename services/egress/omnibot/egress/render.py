"""What egress sends: Omnidesk request bodies, rendered from outbound actions. Pure."""

from __future__ import annotations

import html
from typing import Any


def text_to_html(text: str) -> str:
    """Plain text as safe HTML: escaped, line breaks kept."""
    paragraphs = text.replace("\r\n", "\n").split("\n\n")
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def reply_body(staff_id: int, text: str) -> dict[str, Any]:
    return {"message": {"staff_id": staff_id, "content": text, "content_html": text_to_html(text)}}


def note_body(text: str) -> dict[str, Any]:
    return {"note": {"content": text, "content_html": text_to_html(text)}}


def same_text(sent: str, stored: dict[str, Any]) -> bool:
    """Does a message read back from Omnidesk carry the text we sent? Whitespace is normalised,
    because Omnidesk may trim or re-wrap; `content` may be empty while `content_html` is set."""
    wanted = " ".join(sent.split())
    content = str(stored.get("content") or "")
    if content and " ".join(content.split()) == wanted:
        return True
    content_html = str(stored.get("content_html") or "")
    return bool(content_html) and (
        content_html == text_to_html(sent) or " ".join(_strip_tags(content_html).split()) == wanted
    )


def _strip_tags(markup: str) -> str:
    out: list[str] = []
    inside = False
    for char in markup.replace("<br>", "\n").replace("</p><p>", "\n\n"):
        if char == "<":
            inside = True
        elif char == ">":
            inside = False
        elif not inside:
            out.append(char)
    return html.unescape("".join(out))
