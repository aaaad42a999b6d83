"""egress's deliverer against the sandbox Omnidesk over real HTTP: once, in order, readable failures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from omnibot.egress.deliver import Deliverer
from omnibot.egress.download import FileDownloader
from omnibot.sandbox.faults import FaultResponse
from omnibot.sandbox.state import SandboxState
from omnibot.shared.channel_cache import ChannelDirectory
from omnibot.shared.channels import Channel
from omnibot.shared.crypto import SecretBox, generate_key
from omnibot.shared.deliveries import MemoryDeliveryStore, utc_day
from omnibot.shared.errors import Deferred, PermanentError, TransientError
from omnibot.shared.messages import SendText, TransferToOperator
from omnibot.shared.net.policy import NetworkPolicy
from omnibot.shared.omnidesk import OmnideskClient
from omnibot.shared.ratelimit import AccountThrottle
from omnibot.shared.settle import RetryPolicy
from omnibot.testkit.ports import free_port
from omnibot.testkit.sandbox import running_sandbox

BOX = SecretBox(generate_key())


class Env:
    def __init__(
        self, state: SandboxState, deliverer: Deliverer, cursors: MemoryDeliveryStore, case: int
    ) -> None:
        self.state, self.deliverer, self.cursors, self.case = state, deliverer, cursors, case

    def text(self, seq: int, text: str) -> SendText:
        return SendText(
            action_id=f"1:{self.case}:{seq}",
            channel_id=1,
            chat_id=str(self.case),
            seq=seq,
            created_at=0,
            text=text,
        )


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running_sandbox(free_port()) as (state, url):
        case = state.open_case(user=state.user_for(name="Anna"), subject="hi").case_id
        state.edit_case(case, add_labels=[state.bot_label_id])
        channel = Channel(
            id=1,
            domain=url,
            email=state.bot_email,
            api_key_enc=BOX.encrypt(state.api_key),
            webhook_secret_enc="",
            webhook_secret_hash="",
            agent="a",
            active=True,
            bot_label_id=state.bot_label_id,
        )

        async def lookup(channel_id: int) -> Channel | None:
            return channel

        cursors = MemoryDeliveryStore()
        files = FileDownloader(NetworkPolicy.from_setting("127.0.0.0/8"))
        await files.start()
        async with aiohttp.ClientSession() as session:
            client = OmnideskClient(session, AccountThrottle(), timeout_s=1.0)
            deliverer = Deliverer(
                client=client,
                channels=ChannelDirectory(lookup),
                deliveries=cursors,
                secrets=BOX,
                files=files,
                policy=RetryPolicy(mode="delayed", max_attempts=3),
            )
            yield Env(state, deliverer, cursors, case)
        await files.close()


def bot(env: Env) -> list[str]:
    return [m.content for m in env.state.staff_messages(env.case)]


async def test_replies_are_posted_as_the_bot_found_beyond_the_first_staff_page(env: Env) -> None:
    await env.deliverer.deliver(env.text(1, "a < b"), attempt=1, maybe_done=False)
    message = env.state.staff_messages(env.case)[0]
    assert (message.content, message.content_html, message.staff_id) == (
        "a < b",
        "<p>a &lt; b</p>",
        env.state.bot_staff_id,
    )
    pages = [r.query.get("page") for r in env.state.requests if r.path == "/api/staff.json"]
    assert pages == ["1", "2"]
    await env.deliverer.deliver(env.text(2, "second"), attempt=1, maybe_done=False)
    assert [r.path for r in env.state.requests].count("/api/staff.json") == 2  # the id is cached


async def test_duplicates_are_dropped_and_gaps_wait(env: Env) -> None:
    await env.deliverer.deliver(env.text(1, "one"), attempt=1, maybe_done=False)
    await env.deliverer.deliver(env.text(1, "one"), attempt=1, maybe_done=False)
    with pytest.raises(Deferred):
        await env.deliverer.deliver(env.text(3, "three"), attempt=1, maybe_done=False)
    await env.deliverer.deliver(env.text(2, "two"), attempt=1, maybe_done=False)
    await env.deliverer.deliver(env.text(3, "three"), attempt=1, maybe_done=False)
    assert bot(env) == ["one", "two", "three"]


async def test_accepted_but_unanswered_is_recognised_on_retry(env: Env) -> None:
    env.state.faults.add(
        method="POST", path=r"/messages\.json", responses=[FaultResponse(status=502, after_accept=True)]
    )
    with pytest.raises(TransientError) as info:
        await env.deliverer.deliver(env.text(1, "hello"), attempt=1, maybe_done=False)
    assert info.value.ambiguous
    await env.deliverer.deliver(env.text(1, "hello"), attempt=2, maybe_done=True)
    assert bot(env) == ["hello"]
    assert (await env.cursors.cursor(f"1:{env.case}")).seq == 1


async def test_a_timeout_after_acceptance_posts_once(env: Env) -> None:
    env.state.faults.add(
        method="POST", path=r"/messages\.json", responses=[FaultResponse(delay_s=5, after_accept=True)]
    )
    with pytest.raises(TransientError):
        await env.deliverer.deliver(env.text(1, "hello"), attempt=1, maybe_done=False)
    await env.deliverer.deliver(env.text(1, "hello"), attempt=2, maybe_done=True)
    assert bot(env) == ["hello"]


async def test_the_same_text_twice_is_posted_twice(env: Env) -> None:
    # The read-back only counts messages after the last one we know we delivered.
    await env.deliverer.deliver(env.text(1, "menu"), attempt=1, maybe_done=False)
    await env.deliverer.deliver(env.text(2, "menu"), attempt=1, maybe_done=True)
    assert bot(env) == ["menu", "menu"]


async def test_permanent_errors_are_readable_and_do_not_block_the_chat(env: Env) -> None:
    env.state.faults.add(
        method="POST",
        path=r"/messages\.json",
        responses=[FaultResponse(status=404, body={"error": "case_not_found"})],
    )
    with pytest.raises(PermanentError, match="404 case_not_found"):
        await env.deliverer.deliver(env.text(1, "lost"), attempt=1, maybe_done=False)
    await env.deliverer.deliver(env.text(2, "next"), attempt=1, maybe_done=False)
    assert bot(env) == ["next"]


async def test_wrong_credentials_are_permanent_and_name_no_key(env: Env) -> None:
    env.state.api_key = "rotated"
    with pytest.raises(PermanentError) as info:
        await env.deliverer.deliver(env.text(1, "x"), attempt=1, maybe_done=False)
    assert "401" in str(info.value)
    assert "sandbox-api-key" not in str(info.value)


async def test_giving_up_after_max_attempts_moves_the_cursor(env: Env) -> None:
    env.state.faults.add(method="POST", path=r"/messages\.json", responses=[FaultResponse(status=503)])
    with pytest.raises(PermanentError, match="gave up after 3 attempts"):
        await env.deliverer.deliver(env.text(1, "x"), attempt=3, maybe_done=False)
    assert (await env.cursors.cursor(f"1:{env.case}")).seq == 1


async def test_transfer_leaves_a_note_and_removes_the_bot_label(env: Env) -> None:
    action = TransferToOperator(
        action_id="t",
        channel_id=1,
        chat_id=str(env.case),
        seq=1,
        created_at=0,
        summary="omnibot: handed over\n- где заказ?",
        label_id=None,
    )
    await env.deliverer.deliver(action, attempt=1, maybe_done=False)
    assert [n.content for n in env.state.notes(env.case)] == ["omnibot: handed over\n- где заказ?"]
    assert env.state.bot_label_id not in env.state.case(env.case).labels


async def test_transfer_falls_back_to_the_labels_list(env: Env) -> None:
    env.state.delete_labels_supported = False
    action = TransferToOperator(
        action_id="t", channel_id=1, chat_id=str(env.case), seq=1, created_at=0, summary="s"
    )
    await env.deliverer.deliver(action, attempt=1, maybe_done=False)
    assert env.state.bot_label_id not in env.state.case(env.case).labels
    bodies = [r.json for r in env.state.requests if r.method == "PUT"]
    assert bodies == [{"case": {"delete_labels": [env.state.bot_label_id]}}, {"case": {"labels": []}}]


async def test_the_bot_label_can_be_named_by_its_title(env: Env) -> None:
    channel = await env.deliverer._channels.get(1)
    assert channel is not None
    channel.bot_label_id, channel.bot_label_title = None, "на боте"
    action = TransferToOperator(
        action_id="t", channel_id=1, chat_id=str(env.case), seq=1, created_at=0, summary="s"
    )
    await env.deliverer.deliver(action, attempt=1, maybe_done=False)
    assert env.state.bot_label_id not in env.state.case(env.case).labels
    assert any(r.path == "/api/labels.json" for r in env.state.requests)


async def test_only_text_replies_count_in_the_days_tally_each_once(env: Env) -> None:
    from aiohttp import web

    from omnibot.shared.messages import SendFile

    async def track(request: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-1.4", content_type="application/pdf")

    app = web.Application()
    app.router.add_get("/track.pdf", track)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await env.deliverer.deliver(env.text(1, "hello"), attempt=1, maybe_done=False)
        await env.deliverer.deliver(env.text(1, "hello"), attempt=2, maybe_done=True)  # redelivered
        file = SendFile(
            action_id=f"1:{env.case}:2",
            channel_id=1,
            chat_id=str(env.case),
            seq=2,
            created_at=0,
            url=f"http://127.0.0.1:{port}/track.pdf",
            name="track.pdf",
        )
        await env.deliverer.deliver(file, attempt=1, maybe_done=False)
        transfer = TransferToOperator(
            action_id=f"1:{env.case}:3", channel_id=1, chat_id=str(env.case), seq=3, created_at=0, summary="s"
        )
        await env.deliverer.deliver(transfer, attempt=1, maybe_done=False)
    finally:
        await runner.cleanup()
    assert [m.attachments[0].file_name for m in env.state.staff_messages(env.case)[1:]] == ["track.pdf"]
    assert env.state.notes(env.case)  # the transfer's note is there, and not a reply
    today = utc_day(time.time())
    assert await env.cursors.replies_on(today) == 1  # the text reply, once; not the file or the transfer
