"""The admin API's agent endpoints: list, import, validate, show, versions, publish, export, delete."""

from __future__ import annotations

from aiohttp import web

from omnibot.admin.api.base import PREFIX, answer, ops
from omnibot.admin.api.openapi import AGENT_FILE, Endpoint, Param
from omnibot.admin.api.params import INT, PAGE
from omnibot.admin.api.parsing import Query, only_page, read_body, read_raw
from omnibot.admin.schemas import (
    AgentDeleted,
    AgentImported,
    AgentPublish,
    AgentPublished,
    AgentValid,
    AgentVersionView,
    AgentView,
    Page,
)


async def list_agents(request: web.Request) -> web.Response:
    limit, offset = only_page(request)
    return answer(await ops(request).agents.list_agents(limit=limit, offset=offset))


async def import_agent(request: web.Request) -> web.Response:
    query = Query(request)
    publish = query.flag("publish")
    query.done()
    raw = await read_raw(request, required=True)
    assert raw is not None
    result = await ops(request).agents.import_agent(raw, publish=publish)
    return answer(result, status=201)


async def validate_agent(request: web.Request) -> web.Response:
    raw = await read_raw(request, required=True)
    assert raw is not None
    return answer(await ops(request).agents.validate_agent(raw))


async def show_agent(request: web.Request) -> web.Response:
    return answer(await ops(request).agents.show_agent(request.match_info["name"]))


async def list_agent_versions(request: web.Request) -> web.Response:
    limit, offset = only_page(request)
    name = request.match_info["name"]
    return answer(await ops(request).agents.list_agent_versions(name, limit=limit, offset=offset))


async def publish_agent(request: web.Request) -> web.Response:
    body = await read_body(request, AgentPublish, required=False)
    return answer(await ops(request).agents.publish_agent(request.match_info["name"], body.version))


async def export_agent(request: web.Request) -> web.Response:
    query = Query(request)
    version = query.optional_integer("version")
    query.done()
    name = request.match_info["name"]
    exported = await ops(request).agents.export_agent(name, version)
    return web.Response(body=exported, content_type="application/json")


async def delete_agent(request: web.Request) -> web.Response:
    return answer(await ops(request).agents.delete_agent(request.match_info["name"]))


_NAME = Param("name", "path", {"type": "string"}, "agent name")

ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", f"{PREFIX}/agents", list_agents, "List agents", "agents", Page[AgentView], params=PAGE),
    Endpoint(
        "POST",
        f"{PREFIX}/agents",
        import_agent,
        "Import an agent file as a new version",
        "agents",
        AgentImported,
        status=201,
        body=AGENT_FILE,
        params=(Param("publish", "query", {"type": "boolean"}, "publish the imported version"),),
        description="The body is the agent file itself. A broken file is refused (422 agent_invalid) "
        "with every problem listed; warnings (unreachable slots...) come back with the import.",
    ),
    Endpoint(
        "POST",
        f"{PREFIX}/agents/validate",
        validate_agent,
        "Check an agent file without importing it",
        "agents",
        AgentValid,
        body=AGENT_FILE,
    ),
    Endpoint(
        "GET",
        f"{PREFIX}/agents/{{name}}",
        show_agent,
        "One agent",
        "agents",
        AgentView,
        params=(_NAME,),
        errors=(404,),
    ),
    Endpoint(
        "GET",
        f"{PREFIX}/agents/{{name}}/versions",
        list_agent_versions,
        "List an agent's versions",
        "agents",
        Page[AgentVersionView],
        params=(_NAME, *PAGE),
        errors=(404,),
    ),
    Endpoint(
        "POST",
        f"{PREFIX}/agents/{{name}}/publish",
        publish_agent,
        "Publish a version (default: the latest)",
        "agents",
        AgentPublished,
        body=AgentPublish,
        body_required=False,
        params=(_NAME,),
        errors=(404,),
        description="New chats use the published version; chats already running keep theirs.",
    ),
    Endpoint(
        "GET",
        f"{PREFIX}/agents/{{name}}/export",
        export_agent,
        "Export a version as an importable agent file",
        "agents",
        AGENT_FILE,
        params=(
            _NAME,
            Param("version", "query", {**INT, "minimum": 1}, "the version (default: the latest)"),
        ),
        errors=(404,),
    ),
    Endpoint(
        "DELETE",
        f"{PREFIX}/agents/{{name}}",
        delete_agent,
        "Delete an agent and all its versions",
        "agents",
        AgentDeleted,
        params=(_NAME,),
        errors=(404, 409),
        description="Refused (409 agent_in_use) while a channel uses the agent as its default agent.",
    ),
]
