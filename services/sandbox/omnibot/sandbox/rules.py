"""Omnidesk rules with the «Выполнить вебхук» action: which fire, what they send, delivering it.

Owns placeholder substitution (the default body is the seed's, `omnibot.shared.omnidesk`), the
rule semantics and the delivery of webhooks, each case's in order.

Rule semantics, as the seed sets the account up:
- "incoming" fires when a customer message creates a case; it also assigns the bot staff member
  and adds the bot label (the seed's incoming rule does both);
- "changed" fires on a customer message in an existing case and on a change of the case's labels,
  only while the case carries the bot label when `require_label` is set; set up like the incoming
  rule, a label change it fires on also makes the bot responsible again (the label came back);
- the seed's transfer rule: when the bot label leaves a case the bot is responsible for, the bot
  stops being responsible and any available staff member takes the case.

GUESS (omnidesk-api.md §3): Omnidesk substitutes placeholders into the body text; here they are
substituted into the JSON strings, so a customer text with quotes cannot break the JSON. Unknown
placeholders and unknown values become "". The webhook timeout (5 s) and the absence of retries
are guesses too.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from omnibot.sandbox.records import Case, Message, Rule, WebhookDelivery
from omnibot.sandbox.state import SandboxState
from omnibot.shared.omnidesk import SEED_RULE_BODY

log = logging.getLogger(__name__)

# A rule saved without a body sends the seed's (the body product.md gives, exactly).
DEFAULT_WEBHOOK_BODY = SEED_RULE_BODY

WEBHOOK_TIMEOUT_S = 5.0
# (url, body) -> (HTTP status or None, error or None); injectable so tests can hold deliveries.
PostWebhook = Callable[[str, Any], Awaitable[tuple[int | None, str | None]]]
ATTACHMENTS_SEPARATOR = "\n—————\nВложенные файлы:\n"
_PLACEHOLDER = re.compile(r"\[([a-z_]+)\]")


# --- pure -------------------------------------------------------------------------------------


def describe_message(message: Message | None) -> str:
    """`[case_description]`: the customer's text, with their files listed the way chats show them."""
    if message is None:
        return ""
    if not message.attachments:
        return message.content
    return message.content + ATTACHMENTS_SEPARATOR + "\n".join(a.url for a in message.attachments)


def placeholder_values(state: SandboxState, case: Case, message: Message | None) -> dict[str, str]:
    """Every placeholder the sandbox knows, as the strings Omnidesk puts in."""
    user = state.users.get(case.user_id)
    return {
        "case_id": str(case.case_id),
        "case_number": case.case_number,
        "case_subject": case.subject,
        "case_description": describe_message(message),
        "case_status": case.status,
        "user_id": str(case.user_id) if case.user_id else "",
        "user_email": user.email if user else "",
        "user_full_name": user.full_name if user else "",
        "user_phone": user.phone if user else "",
        "staff_id": str(case.staff_id) if case.staff_id else "",
        "group_id": str(case.group_id) if case.group_id else "",
    }


def render_body(template: Any, values: Mapping[str, str]) -> Any:
    """The template with `[placeholder]`s in its strings replaced (keys are left as they are)."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: values.get(m[1], ""), template)
    if isinstance(template, Mapping):
        return {key: render_body(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render_body(item, values) for item in template]
    return template


def is_webhook_url(url: str) -> bool:
    return re.match(r"^https?://\S+$", url.strip()) is not None


def changed_rules(state: SandboxState, case: Case) -> list[Rule]:
    """The "changed" rules whose label condition the case meets now."""
    has_label = state.bot_label_id in case.labels
    return [rule for rule in state.rules if rule.on == "changed" and (has_label or not rule.require_label)]


def incoming_rules(state: SandboxState) -> list[Rule]:
    return [rule for rule in state.rules if rule.on == "incoming"]


# --- delivery ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    rule: Rule
    case_id: int
    body: Any  # rendered when the rule fired, not when it is delivered


class RuleRunner:
    """Fires rules on case events and delivers their webhooks.

    Deliveries of different cases run concurrently; those of one case run in the order the rules
    fired (each case's batch waits for the previous batch of that case).
    """

    def __init__(
        self, state: SandboxState, *, timeout_s: float = WEBHOOK_TIMEOUT_S, post: PostWebhook | None = None
    ) -> None:
        self._state = state
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._post = post or self._post_http
        self._session: aiohttp.ClientSession | None = None
        self._tails: dict[int, asyncio.Task[list[WebhookDelivery]]] = {}
        self._tasks: set[asyncio.Task[list[WebhookDelivery]]] = set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        self.cancel_pending()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._session is not None:
            await self._session.close()
            self._session = None

    def cancel_pending(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def customer_message(
        self, case: Case, message: Message, *, new_case: bool
    ) -> list[WebhookDelivery]:
        """Fire the rules a customer message triggers; return once their webhooks were answered."""
        if new_case:
            rules = incoming_rules(self._state)
            if rules:
                # Before the webhook, so the bot already sees the case as its own when it looks.
                self._state.apply_incoming_rule_actions(case.case_id)
        else:
            rules = changed_rules(self._state, case)
        return await self._fire(case, rules, message)

    def labels_changed(self, case: Case) -> None:
        """Fire the "changed" rules for a label change, without waiting for the deliveries.

        `[case_description]` is then the customer's latest message (nothing new was written).
        """
        state = self._state
        if state.bot_label_id not in case.labels and case.staff_id == state.bot_staff_id:
            state.apply_transfer_rule_actions(case.case_id)
        rules = changed_rules(state, case)
        if not rules:
            return
        if state.bot_label_id in case.labels and case.staff_id != state.bot_staff_id:
            state.apply_incoming_rule_actions(case.case_id)
        customer = [m for m in case.messages if not m.note and m.user_id != 0]
        self._fire(case, rules, customer[-1] if customer else None)

    def _fire(
        self, case: Case, rules: list[Rule], message: Message | None
    ) -> asyncio.Task[list[WebhookDelivery]]:
        values = placeholder_values(self._state, case, message)
        jobs = [_Job(rule=rule, case_id=case.case_id, body=render_body(rule.body, values)) for rule in rules]
        previous = self._tails.get(case.case_id)
        task = asyncio.get_running_loop().create_task(self._deliver_after(previous, jobs))
        self._tails[case.case_id] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._forget(case.case_id, done))
        return task

    def _forget(self, case_id: int, task: asyncio.Task[list[WebhookDelivery]]) -> None:
        self._tasks.discard(task)
        if self._tails.get(case_id) is task:
            del self._tails[case_id]

    async def _deliver_after(
        self, previous: asyncio.Task[list[WebhookDelivery]] | None, jobs: list[_Job]
    ) -> list[WebhookDelivery]:
        if previous is not None:
            # asyncio.wait: only the order matters, not how the previous batch ended.
            await asyncio.wait([previous])
        return [await self._deliver(job) for job in jobs]

    async def _deliver(self, job: _Job) -> WebhookDelivery:
        status, error = await self._post(job.rule.webhook_url, job.body)
        if error is not None:
            log.warning("webhook of rule %s for case %s failed: %s", job.rule.rule_id, job.case_id, error)
        delivery = WebhookDelivery(
            rule_id=job.rule.rule_id,
            case_id=job.case_id,
            url=job.rule.webhook_url,
            body=job.body,
            status=status,
            error=error,
            time=self._state.wall_clock(),
        )
        self._state.record_delivery(delivery)
        return delivery

    async def _post_http(self, url: str, body: Any) -> tuple[int | None, str | None]:
        if self._session is None:
            return None, "sandbox rule runner is not started"
        try:
            async with self._session.post(
                url, data=msgspec.json.encode(body), headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                return response.status, None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
