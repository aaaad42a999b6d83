"""Channels: the list, the seed's creation panel (type, then the Omnidesk form), a channel's page.

The creation panel shows the Chatbot webhook URL before anything is saved (see `reservation`).
CREATE saves the channel inactive; CREATE & ACTIVATE saves it and runs the four activation
checks, each shown passed or failed with its reason (a failed one leaves it saved and inactive).
A channel's page edits it (the API keys are never shown; a new one typed replaces it; an optional
section names the channel's own language model for `llm` slots), activates, deactivates, rotates
the webhook secret, deletes after a confirmation, and walks through the Omnidesk side of the setup
with this channel's values.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from msgspec import UNSET, UnsetType

from omnibot.admin.console import reservation
from omnibot.admin.console.context import console_of, render, visitor_of
from omnibot.admin.console.forms import CHANNEL_FIELDS, ChannelForm, FormProblems, by_field
from omnibot.admin.console.views.common import change, channel_id, data, notice, or_none
from omnibot.admin.operations import Refused
from omnibot.admin.schemas import MAX_PAGE, ChannelChanges
from omnibot.shared.omnidesk import SEED_RULE_BODY

RULE_TEXT = json.dumps(SEED_RULE_BODY, ensure_ascii=False, indent=2)  # to paste into Omnidesk's rules
CHECK_TITLES = {
    "agent": "The agent is published",
    "omnidesk": "Omnidesk answers with these credentials",
    "webhook": "The webhook is registered",
    "unique": "No other active channel uses this domain and e-mail",
}


async def _agents(request: web.Request) -> list[str]:
    page = data(await console_of(request).management.agents.list_agents(limit=MAX_PAGE))
    return [a["name"] for a in page["items"]]


async def _channel(request: web.Request) -> dict[str, Any]:
    found = await or_none(console_of(request).management.channels.show_channel(channel_id(request)))
    if found is None:
        raise web.HTTPNotFound()
    chosen: dict[str, Any] = found
    return chosen


async def list_channels(request: web.Request) -> web.Response:
    page = data(await console_of(request).management.channels.list_channels(limit=MAX_PAGE))
    return render(request, "channels.html", {"channels": page["items"], "notice": notice(request)})


async def choose_type(request: web.Request) -> web.Response:
    return render(request, "channel_type.html")


async def new_omnidesk(request: web.Request) -> web.Response:
    console = console_of(request)
    channel, secret = await console.management.channels.reserve_channel()
    sealed = reservation.seal(
        console.box, reservation.Reservation(channel_id=channel, secret=secret, issued_at=time.time())
    )
    return await _creation_panel(request, ChannelForm(), FormProblems(), sealed, channel, secret)


async def _creation_panel(
    request: web.Request,
    form: ChannelForm,
    problems: FormProblems,
    sealed: str,
    channel: int,
    secret: str,
    *,
    status: int = 200,
) -> web.Response:
    console = console_of(request)
    return render(
        request,
        "channel_new.html",
        {
            "form": form,
            "problems": problems,
            "sealed": sealed,
            "webhook_url": console.management.channels.webhook_url_for(channel, secret),
            "agents": await _agents(request),
        },
        status=status,
    )


async def create_omnidesk(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    data = await request.post()
    form = ChannelForm.read(data)
    sealed = str(data.get("reservation", ""))
    reserved = reservation.unseal(console.box, sealed)
    if reserved is None:
        # Too old or tampered with: a fresh panel (with a new URL) rather than a guess.
        raise web.HTTPSeeOther("/channels/new/omnidesk")
    activate = data.get("action") == "create_activate"
    label_id, label_title, label_problem = form.bot_label_fields()
    try:
        if label_problem:
            raise Refused("invalid", [f"bot_label: {label_problem}"])
        created = await change(
            request,
            "channel.create_activate" if activate else "channel.create",
            str(reserved.channel_id),
            console.management.channels.create_channel(
                title=form.title or "New channel",
                domain=form.domain,
                api_key=form.api_key,
                email=form.email,
                agent=form.agent,
                bot_label_id=label_id,
                bot_label_title=label_title,
                activate=activate,
                reserved=(reserved.channel_id, reserved.secret),
            ),
            detail=f"{form.title} {form.domain} {form.email}",
        )
    except Refused as exc:
        if exc.code == "conflict":
            raise web.HTTPSeeOther(f"/channels/{reserved.channel_id}") from None
        problems = by_field(exc.problems, CHANNEL_FIELDS)
        form.api_key = ""  # never sent back into a page
        return await _creation_panel(
            request, form, problems, sealed, reserved.channel_id, reserved.secret, status=422
        )
    if not activate:
        raise web.HTTPSeeOther(f"/channels/{created['id']}?notice=created")
    return await _channel_page(request, created, checks=created.get("checks") or [])


async def show_channel(request: web.Request) -> web.Response:
    return await _channel_page(request, await _channel(request), notice_text=notice(request))


async def _channel_page(
    request: web.Request,
    channel: dict[str, Any],
    *,
    checks: list[dict[str, Any]] | None = None,
    problems: FormProblems | None = None,
    form: ChannelForm | None = None,
    notice_text: str = "",
    status: int = 200,
) -> web.Response:
    if form is None:
        label = channel["bot_label_id"] or channel.get("bot_label_title") or ""
        form = ChannelForm(
            title=channel["title"],
            domain=channel["domain"],
            email=channel["email"],
            agent=channel["agent"],
            bot_label=str(label),
            llm_base_url=channel["llm_base_url"] or "",
            llm_model=channel["llm_model"] or "",
        )
    visitor = visitor_of(request)
    return render(
        request,
        "channel.html",
        {
            "channel": channel,
            # The webhook URL holds the secret: only for those who may paste it into Omnidesk.
            "webhook_url": channel["webhook_url"] if visitor.is_admin else "",
            "checks": [{**c, "title": CHECK_TITLES.get(c["name"], c["name"])} for c in checks or []],
            "form": form,
            "problems": problems or FormProblems(),
            "agents": await _agents(request),
            "rule_text": RULE_TEXT,
            "notice": notice_text,
        },
        status=status,
    )


async def edit_channel(request: web.Request) -> web.Response:
    console = console_of(request)
    channel = await _channel(request)
    form = ChannelForm.read(await request.post())
    label_id, label_title, label_problem = form.bot_label_fields()
    changes = ChannelChanges(
        title=form.title,
        domain=form.domain,
        email=form.email,
        agent=form.agent,
        api_key=form.api_key if form.api_key.strip() else UNSET,
        bot_label_id=label_id,
        bot_label_title=label_title,
        llm_base_url=form.llm_base_url,
        llm_model=form.llm_model,
        llm_api_key=_llm_key_change(form),
    )
    try:
        if label_problem:
            raise Refused("invalid", [f"bot_label: {label_problem}"])
        updated = await change(
            request,
            "channel.update",
            str(channel["id"]),
            console.management.channels.update_channel(channel["id"], changes),
            detail=_key_changes(form),
        )
    except Refused as exc:
        form.api_key = form.llm_api_key = ""
        checks = (exc.details or {}).get("checks")
        return await _channel_page(
            request,
            channel,
            checks=checks,
            problems=by_field(exc.problems, CHANNEL_FIELDS),
            form=form,
            status=409 if checks else 422,
        )
    return await _channel_page(
        request, updated, checks=updated.get("checks"), notice_text=visitor_of(request).t("Saved.")
    )


def _llm_key_change(form: ChannelForm) -> str | UnsetType:
    """A key typed replaces the stored one; the box removes it; neither keeps it."""
    if form.llm_api_key.strip():
        return form.llm_api_key
    return "" if form.llm_api_key_clear else UNSET


def _key_changes(form: ChannelForm) -> str:
    """What the audit log says about the keys: whether they changed, never what they are."""
    said = []
    if form.api_key.strip():
        said.append("api key replaced")
    if form.llm_api_key.strip():
        said.append("llm api key replaced")
    elif form.llm_api_key_clear:
        said.append("llm api key removed")
    return ", ".join(said)


async def activate_channel(request: web.Request) -> web.Response:
    cid = channel_id(request)
    result = await change(
        request, "channel.activate", str(cid), console_of(request).management.channels.activate_channel(cid)
    )
    return await _channel_page(request, result, checks=result.get("checks") or [])


async def deactivate_channel(request: web.Request) -> web.StreamResponse:
    cid = channel_id(request)
    await change(
        request,
        "channel.deactivate",
        str(cid),
        console_of(request).management.channels.deactivate_channel(cid),
    )
    raise web.HTTPSeeOther(f"/channels/{cid}?notice=deactivated")


async def rotate_secret(request: web.Request) -> web.StreamResponse:
    cid = channel_id(request)
    await change(
        request,
        "channel.rotate_secret",
        str(cid),
        console_of(request).management.channels.rotate_webhook_secret(cid),
    )
    raise web.HTTPSeeOther(f"/channels/{cid}?notice=rotated")


async def confirm_delete(request: web.Request) -> web.Response:
    return render(request, "channel_delete.html", {"channel": await _channel(request)})


async def delete_channel(request: web.Request) -> web.StreamResponse:
    cid = channel_id(request)
    channel = await _channel(request)
    await change(
        request,
        "channel.delete",
        str(cid),
        console_of(request).management.channels.delete_channel(cid),
        detail=channel["title"],
    )
    raise web.HTTPSeeOther("/channels?notice=deleted")
