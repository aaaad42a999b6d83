"""Agents: the list with versions, importing a file (every problem shown with its slot), a
version's page with its flow diagram (an SVG drawn on the server by `omnibot.agents.graph`),
publishing and exporting."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import msgspec
from aiohttp import web

from omnibot.admin.console.context import console_of, render, visitor_of
from omnibot.admin.console.render import SECURITY_HEADERS
from omnibot.admin.console.views.common import change, data, or_none
from omnibot.admin.operations import Refused
from omnibot.admin.schemas import MAX_PAGE
from omnibot.agents.graph import build_graph, render_svg

MAX_FILE_BYTES = 2 * 1024 * 1024
_SLOT_PROBLEM = re.compile(r"^slot (?P<slot>[^:]{1,200}): (?P<message>.*)$", re.DOTALL)


def _name(request: web.Request) -> str:
    return request.match_info["name"]


def _version(request: web.Request) -> int:
    return int(request.match_info["version"])


def agent_path(name: str, version: int | None = None) -> str:
    path = f"/agents/{quote(name, safe='')}"
    return path if version is None else f"{path}/versions/{version}"


def slot_problems(problems: list[str]) -> list[tuple[str | None, str]]:
    """(slot or None for the file as a whole, message) of each problem the import named."""
    found: list[tuple[str | None, str]] = []
    for problem in problems:
        match = _SLOT_PROBLEM.match(problem)
        found.append((match["slot"], match["message"]) if match else (None, problem))
    return found


async def _list_page(request: web.Request, **extra: Any) -> web.Response:
    ops = console_of(request).management
    agents = data(await ops.agents.list_agents(limit=MAX_PAGE))["items"]
    for agent in agents:
        agent["versions"] = data(await ops.agents.list_agent_versions(agent["name"], limit=MAX_PAGE))["items"]
        agent["path"] = agent_path(agent["name"])
    status = int(extra.pop("status", 200))
    context = {
        "agents": agents,
        "problems": [],
        "warnings": [],
        "imported": "",
        "imported_path": "",
        "agent_path": agent_path,
        **extra,
    }
    return render(request, "agents.html", context, status=status)


async def list_agents(request: web.Request) -> web.Response:
    return await _list_page(request)


async def import_agent(request: web.Request) -> web.Response:
    visitor = visitor_of(request)
    form = await request.post()
    upload = form.get("agent_file")
    publish = form.get("publish") in ("on", "1", "true")
    if not isinstance(upload, web.FileField):
        return await _list_page(request, problems=[(None, visitor.t("Choose a file."))], status=422)
    raw = upload.file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        return await _list_page(request, problems=[(None, "the file is larger than 2 MB")], status=413)
    try:
        result = data(await console_of(request).management.agents.import_agent(raw, publish=publish))
    except Refused as exc:
        return await _list_page(request, problems=slot_problems(exc.problems), status=422)
    await console_of(request).audit.record(
        visitor.user.email if visitor.user else "?",
        "agent.import_publish" if publish else "agent.import",
        f"{result['name']} v{result['version']}",
    )
    done = (
        "Imported and published {name} version {version}."
        if publish
        else "Imported {name} version {version}."
    )
    return await _list_page(
        request,
        imported=visitor.t(done, name=result["name"], version=result["version"]),
        imported_path=agent_path(result["name"], result["version"]),
        warnings=slot_problems(result["warnings"]),
    )


async def show_agent(request: web.Request) -> web.StreamResponse:
    ops = console_of(request).management
    name = _name(request)
    agent = await or_none(ops.agents.show_agent(name))
    if agent is None:
        raise web.HTTPNotFound()
    raise web.HTTPSeeOther(agent_path(name, agent["published_version"] or agent["latest_version"]))


async def _version_or_404(request: web.Request) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    ops = console_of(request).management
    name, version = _name(request), _version(request)
    agent = await or_none(ops.agents.show_agent(name))
    exported = await or_none(ops.agents.export_agent(name, version)) if agent else None
    if agent is None or exported is None or version < 1:
        raise web.HTTPNotFound()
    versions = data(await ops.agents.list_agent_versions(name, limit=MAX_PAGE))["items"]
    return agent, {"versions": versions, "version": version}, exported


async def show_version(request: web.Request) -> web.Response:
    agent, info, exported = await _version_or_404(request)
    doc = msgspec.json.decode(exported)
    graph = build_graph(doc)
    return render(
        request,
        "agent_version.html",
        {
            "agent": agent,
            "version": info["version"],
            "versions": info["versions"],
            "slots": len(graph.nodes),
            "unreachable": graph.unreachable,
            "path": agent_path(agent["name"], info["version"]),
            "agent_path": agent_path,
            "notice": visitor_of(request).t("Published version {version}.", version=info["version"])
            if request.query.get("notice") == "published"
            else "",
        },
    )


async def diagram(request: web.Request) -> web.Response:
    _, _, exported = await _version_or_404(request)
    svg = render_svg(build_graph(msgspec.json.decode(exported)))
    response = web.Response(text=svg, content_type="image/svg+xml", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response


async def export_version(request: web.Request) -> web.Response:
    agent, info, exported = await _version_or_404(request)
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", agent["name"])[:100] or "agent"
    response = web.Response(body=exported, content_type="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}-v{info["version"]}.json"'
    response.headers.update(SECURITY_HEADERS)
    return response


async def publish_version(request: web.Request) -> web.StreamResponse:
    name, version = _name(request), _version(request)
    try:
        await change(
            request,
            "agent.publish",
            f"{name} v{version}",
            console_of(request).management.agents.publish_agent(name, version),
        )
    except Refused as exc:
        if exc.code == "not_found":
            raise web.HTTPNotFound() from None
        raise
    raise web.HTTPSeeOther(agent_path(name, version) + "?notice=published")
