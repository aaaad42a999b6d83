"""What a person does on the playground page, as control-API endpoints (JSON in and out).

Owns: saving the rules as a set (the page's "Save rules"), the operator's reply, putting labels
on a case and taking them off (a label change fires the "changed" rules, as in Omnidesk), and
serving a case's files to the page. The customer's side is the control API's
`POST /sandbox/customer-messages` (JSON or multipart with files).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

import msgspec
from aiohttp import hdrs, web

from omnibot.sandbox.http import base_url, decode_json, json_response
from omnibot.sandbox.playground.views import PREVIEW_TYPES
from omnibot.sandbox.records import ApiError, Case, NewFile, check_file_sizes, text_to_html
from omnibot.sandbox.rules import DEFAULT_WEBHOOK_BODY, RuleRunner, is_webhook_url
from omnibot.sandbox.state import SandboxState
from omnibot.sandbox.uploads import read_form
from omnibot.sandbox.wire import render_label, render_message, render_staff

MAX_RULES = 20


class _RuleIn(msgspec.Struct, kw_only=True):
    webhook_url: str
    on: Literal["incoming", "changed"]
    require_label: bool = True


class _RulesIn(msgspec.Struct, kw_only=True):
    rules: list[_RuleIn]


class _ReplyIn(msgspec.Struct, kw_only=True):
    text: str = ""


def _path_int(request: web.Request, name: str, not_found: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise ApiError(404, not_found) from None


class PlaygroundActions:
    """Handlers of the page's controls."""

    def __init__(self, state: SandboxState, rules: RuleRunner) -> None:
        self._state = state
        self._rules = rules

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put("/sandbox/rules", self.replace_rules),
            web.post("/sandbox/cases/{case_id}/operator-messages", self.operator_reply),
            web.put("/sandbox/cases/{case_id}/labels/{label_id}", self.put_label),
            web.delete("/sandbox/cases/{case_id}/labels/{label_id}", self.delete_label),
            web.get("/sandbox/attachments/{url_hash}/{name}", self.attachment),
        ]

    def _case(self, request: web.Request) -> Case:
        return self._state.find_case(_path_int(request, "case_id", "case_not_found"))

    async def replace_rules(self, request: web.Request) -> web.Response:
        """`{"rules": [{"webhook_url", "on", "require_label"}]}`: the rules of each kind listed
        replace the saved rules of that kind; kinds not listed stay (DELETE /sandbox/rules: none)."""
        body = await decode_json(request, _RulesIn, require_json_type=False)
        if len(body.rules) > MAX_RULES:
            raise ApiError(400, "invalid_request", detail=f"at most {MAX_RULES} rules")
        for rule in body.rules:
            if not is_webhook_url(rule.webhook_url):
                raise ApiError(400, "invalid_request", detail="webhook_url must be an http(s) url")
        self._state.drop_rules({rule.on for rule in body.rules})
        saved = [
            self._state.add_rule(
                webhook_url=rule.webhook_url.strip(),
                on=rule.on,
                require_label=rule.require_label,
                body=DEFAULT_WEBHOOK_BODY,
            )
            for rule in body.rules
        ]
        return json_response(
            {"rules": [{"rule_id": r.rule_id, "on": r.on, "webhook_url": r.webhook_url} for r in saved]}
        )

    async def operator_reply(self, request: web.Request) -> web.Response:
        """A reply from the case's operator (not the bot): JSON `{"text"}` or multipart with files."""
        case = self._case(request)
        files: list[NewFile] = []
        if request.content_type == "multipart/form-data":
            form = await read_form(request)
            text = form.first("text") or ""
            files = [item.file for item in form.files if item.file.name]
        else:
            text = (await decode_json(request, _ReplyIn, require_json_type=False)).text
        if not text.strip() and not files:
            raise ApiError(400, "content_required")
        check_file_sizes(len(f.content) for f in files)
        operator = self._state.operator_for(case.case_id)
        message = self._state.add_staff_message(
            case.case_id,
            staff_id=operator.staff_id,
            content=text,
            content_html=text_to_html(text),
            files=files,
            base_url=base_url(request, self._state),
        )
        return json_response(
            {"message": render_message(message), "staff": render_staff(operator)}, status=201
        )

    async def put_label(self, request: web.Request) -> web.Response:
        return self._set_label(request, present=True)

    async def delete_label(self, request: web.Request) -> web.Response:
        return self._set_label(request, present=False)

    def _set_label(self, request: web.Request, *, present: bool) -> web.Response:
        case = self._case(request)
        label_id = _path_int(request, "label_id", "label_not_found")
        if self._state.set_label(case.case_id, label_id, present):
            self._rules.labels_changed(case)  # fires the "changed" rules, in the background
        labels = [render_label(self._state.labels[i]) for i in case.labels if i in self._state.labels]
        return json_response({"case_id": case.case_id, "labels": labels, "staff_id": case.staff_id})

    async def attachment(self, request: web.Request) -> web.Response:
        """A case's file for the page: images safe to show inline, everything else downloaded.

        Never rendered as a document of this origin (a customer's HTML or SVG file could carry
        script): other types are attachments, and the answer is sandboxed by its own CSP.
        """
        found = self._state.attachment(request.match_info["url_hash"], request.match_info["name"])
        if found is None:
            raise ApiError(404, "not_found")
        inline = found.mime_type in PREVIEW_TYPES
        headers = {
            hdrs.CONTENT_TYPE: found.mime_type if inline else "application/octet-stream",
            hdrs.CONTENT_DISPOSITION: "inline" if inline else "attachment",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "X-Content-Type-Options": "nosniff",
        }
        if not inline:
            headers[hdrs.CONTENT_DISPOSITION] = _attachment_disposition(found.file_name)
        return web.Response(body=found.content, headers=headers)


def _attachment_disposition(name: str) -> str:
    # RFC 6266 with RFC 5987 for non-ASCII names (`договор.pdf`); the plain one is a safe fallback.
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name or 'file'}\"; filename*=UTF-8''{quote(name, safe='')}"
