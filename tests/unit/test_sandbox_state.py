"""Unit tests of the sandbox account state and wire rendering: seed, paging and list shape, rate
limiter on a fake clock, label edits (with and without `delete_labels`), fault queue, waiting."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from omnibot.sandbox.faults import FaultQueue, FaultResponse, RateLimiter
from omnibot.sandbox.records import MAX_FILE_BYTES, ApiError, Case, NewFile, check_file_sizes, page_slice
from omnibot.sandbox.state import SandboxState
from omnibot.sandbox.wire import parse_paging, render_case, render_page, rfc2822

BASE = "http://sandbox.test"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def new_case(state: SandboxState, text: str = "") -> Case:
    user = state.user_for(email=f"{uuid.uuid4().hex}@example.com", name="Иван")
    case = state.open_case(user=user, subject="subject")
    state.add_customer_message(
        case.case_id, text=text or f"hello {uuid.uuid4().hex}", files=[], base_url=BASE
    )
    return case


# --- seed and auth ------------------------------------------------------------------------------


def test_seed_puts_the_bot_after_the_filler_staff() -> None:
    state = SandboxState(filler_staff=120, bot_email="robot@example.com")
    staff = state.staff_list()
    assert len(staff) == 121
    bot = staff[-1]
    assert (bot.staff_id, bot.email, bot.active) == (state.bot_staff_id, "robot@example.com", True)
    assert [(label.label_id, label.title) for label in state.label_list()] == [
        (state.bot_label_id, "На боте")
    ]


def test_reset_keeps_the_bot_ids_and_forgets_cases() -> None:
    state = SandboxState(filler_staff=3)
    bot_id, label_id = state.bot_staff_id, state.bot_label_id
    case = new_case(state)
    state.set_rate_limit(1)
    state.delete_labels_supported = False
    state.reset()
    assert (state.bot_staff_id, state.bot_label_id) == (bot_id, label_id)
    assert state.cases == {}
    assert state.rate_limiter.per_minute == 600
    assert state.delete_labels_supported is True
    # Case ids never repeat: an omnibot remembering the old case must not see it again.
    assert new_case(state).case_id > case.case_id


def test_authenticate() -> None:
    state = SandboxState(filler_staff=0, api_key="k1")
    assert state.authenticate(state.bot_email.upper(), "k1").staff_id == state.bot_staff_id
    with pytest.raises(ApiError) as wrong_key:
        state.authenticate(state.bot_email, "k2")
    assert (wrong_key.value.status, wrong_key.value.code) == (401, "unauthorized")
    state.set_staff_active(state.bot_staff_id, False)
    with pytest.raises(ApiError) as inactive:
        state.authenticate(state.bot_email, "k1")
    assert (inactive.value.status, inactive.value.code) == (403, "staff_not_active")


# --- paging and wire shape --------------------------------------------------------------------


def test_page_slice() -> None:
    items = list(range(250))
    assert page_slice(items, 1, 100) == list(range(100))
    assert page_slice(items, 3, 100) == list(range(200, 250))
    assert page_slice(items, 4, 100) == []


def test_list_shape_is_an_object_with_numeric_keys_and_total_count() -> None:
    body = render_page("label", [{"label_id": 1}, {"label_id": 2}], total=7)
    assert body == {"0": {"label": {"label_id": 1}}, "1": {"label": {"label_id": 2}}, "total_count": 7}
    assert render_page("staff", [], total=0) == {"total_count": 0}


@pytest.mark.parametrize(
    ("query", "expected"),
    [({}, (1, 100)), ({"page": "2", "limit": "5"}, (2, 5)), ({"page": "500", "limit": "1"}, (500, 1))],
)
def test_parse_paging_accepts(query: dict[str, str], expected: tuple[int, int]) -> None:
    assert parse_paging(query) == expected


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"page": "0"}, "incorrect_page"),
        ({"page": "501"}, "incorrect_page"),
        ({"limit": "0"}, "incorrect_limit"),
        ({"limit": "101"}, "incorrect_limit"),
        ({"limit": "ten"}, "incorrect_limit"),
    ],
)
def test_parse_paging_refuses(query: dict[str, str], code: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_paging(query)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_timestamps_are_rfc2822_in_moscow_time() -> None:
    assert rfc2822(1399238117.0) == "Mon, 05 May 2014 00:15:17 +0300"
    assert rfc2822(None) == "-"


def test_case_wire_has_the_documented_field_set() -> None:
    state = SandboxState(filler_staff=0)
    case = new_case(state)
    wire = render_case(case)
    assert set(wire) == {
        "case_id", "case_number", "subject", "user_id", "staff_id", "group_id", "status", "priority",
        "channel", "recipient", "cc_emails", "bcc_emails", "deleted", "spam", "created_at", "closed_at",
        "updated_at", "last_response_at", "closing_speed", "language_id", "custom_fields", "labels",
        "locked_labels", "rating", "rating_comment", "rated_staff_id",
    }  # fmt: skip
    assert wire["closed_at"] == "-"
    assert wire["status"] == "open"


# --- rate limiter -------------------------------------------------------------------------------


def test_rate_limiter_refuses_after_the_budget_and_slides() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, clock)
    assert [limiter.take().left for _ in range(3)] == [2, 1, 0]
    refused = limiter.take()
    assert (refused.allowed, refused.left, refused.retry_after_s) == (False, 0, 60)
    clock.now += 20
    assert limiter.take().retry_after_s == 40  # a refusal consumes nothing
    clock.now += 40
    again = limiter.take()
    assert (again.allowed, again.left) == (True, 2)


def test_rate_limiter_reset_gives_a_fresh_budget() -> None:
    limiter = RateLimiter(1, FakeClock())
    assert limiter.take().allowed
    assert not limiter.take().allowed
    limiter.reset(2)
    assert [limiter.take().allowed for _ in range(3)] == [True, True, False]


# --- messages and labels ------------------------------------------------------------------------


def test_replies_notes_and_statuses() -> None:
    state = SandboxState(filler_staff=0)
    case = new_case(state)
    reply = state.add_staff_message(
        case.case_id, staff_id=state.bot_staff_id, content="hi", content_html="", files=[], base_url=BASE
    )
    assert case.status == "waiting"
    assert case.last_response_at == reply.created_at
    note = state.add_staff_message(
        case.case_id,
        staff_id=state.bot_staff_id,
        content="for the operator",
        content_html="",
        files=[],
        base_url=BASE,
        note=True,
    )
    assert case.status == "waiting"
    assert state.staff_messages(case.case_id) == [reply]
    assert state.notes(case.case_id) == [note]
    state.add_customer_message(case.case_id, text="again", files=[], base_url=BASE)
    assert case.status == "open"
    assert len(state.customer_messages(case.case_id)) == 2
    with pytest.raises(KeyError):
        state.case(case.case_id + 1000)


def test_stored_attachment_is_checkable_and_downloadable() -> None:
    state = SandboxState(filler_staff=0)
    case = new_case(state)
    message = state.add_staff_message(
        case.case_id,
        staff_id=state.bot_staff_id,
        content="",
        content_html="",
        files=[NewFile(name="Photo.JPG", content=b"\xff\xd8data", mime_type="image/jpeg")],
        base_url=BASE,
    )
    (attachment,) = message.attachments
    assert attachment.file_size == 6
    assert attachment.sha256 == hashlib.sha256(b"\xff\xd8data").hexdigest()
    assert (
        attachment.url
        == f"{BASE}/attachment/download/chat/{attachment.url_hash}/{message.message_id}_file_0.jpg"
    )
    assert state.attachment(attachment.url_hash, attachment.stored_name) is attachment


def test_file_size_limits() -> None:
    check_file_sizes([MAX_FILE_BYTES, MAX_FILE_BYTES])
    for sizes in ([MAX_FILE_BYTES + 1], [MAX_FILE_BYTES, MAX_FILE_BYTES, 1]):
        with pytest.raises(ApiError) as refused:
            check_file_sizes(sizes)
        assert refused.value.code == "file_too_large"


def test_label_edits() -> None:
    state = SandboxState(filler_staff=0)
    vip = state.add_label(f"VIP {uuid.uuid4().hex}")
    bot = state.bot_label_id
    case = new_case(state)
    assert state.edit_case(case.case_id, add_labels=[bot, vip.label_id]) is True
    assert case.labels == [bot, vip.label_id]
    assert state.edit_case(case.case_id, add_labels=[bot]) is False  # already there
    assert state.edit_case(case.case_id, delete_labels=[bot]) is True
    assert case.labels == [vip.label_id]
    assert state.edit_case(case.case_id, labels=[bot]) is True
    assert case.labels == [bot]
    assert state.edit_case(case.case_id, status="closed", staff_id=0, group_id=42) is False
    assert (case.status, case.staff_id, case.group_id) == ("closed", 0, 42)
    assert case.closed_at is not None


def test_unsupported_delete_labels_is_ignored_and_labels_replace_still_works() -> None:
    state = SandboxState(filler_staff=0)
    state.delete_labels_supported = False
    case = new_case(state)
    state.edit_case(case.case_id, add_labels=[state.bot_label_id])
    assert state.edit_case(case.case_id, delete_labels=[state.bot_label_id]) is False
    assert case.labels == [state.bot_label_id]
    assert state.edit_case(case.case_id, labels=[]) is True
    assert case.labels == []


def test_unknown_label_or_staff_is_refused() -> None:
    state = SandboxState(filler_staff=0)
    case = new_case(state)
    with pytest.raises(ApiError) as label:
        state.edit_case(case.case_id, add_labels=[1])
    assert label.value.code == "label_not_found"
    with pytest.raises(ApiError) as staff:
        state.edit_case(case.case_id, staff_id=case.case_id)
    assert staff.value.code == "staff_not_found"
    assert case.labels == []


# --- faults -----------------------------------------------------------------------------------


def test_fault_queue_consumes_matching_responses_in_order() -> None:
    queue = FaultQueue()
    queue.add(
        method="post",
        path=r"/messages\.json$",
        responses=[FaultResponse(status=502), FaultResponse(status=503)],
        times=2,
    )
    path = "/api/cases/2000/messages.json"
    assert queue.take("GET", path) is None
    assert queue.take("POST", "/api/cases/2000/note.json") is None
    taken = [queue.take("POST", path) for _ in range(4)]
    assert [response.status if response else None for response in taken] == [502, 503, 502, 503]
    assert queue.take("POST", path) is None
    assert queue.pending() == []


def test_fault_queue_falls_through_to_the_next_matching_fault() -> None:
    queue = FaultQueue()
    queue.add(method=None, path="/api/", responses=[FaultResponse(status=500)])
    queue.add(method="GET", path="/api/", responses=[FaultResponse(status=429, headers={"retry_after": "7"})])
    first, second = queue.take("GET", "/api/staff.json"), queue.take("GET", "/api/staff.json")
    assert first is not None and first.status == 500
    assert second is not None and second.headers == {"retry_after": "7"}
    queue.add(method=None, path="x", responses=[FaultResponse(status=500)])
    queue.clear()
    assert queue.take("GET", "x") is None


def test_which_faults_perform_the_operation() -> None:
    assert FaultResponse(status=502).performs_operation is False
    assert FaultResponse(status=502, after_accept=True).performs_operation is True
    assert FaultResponse(delay_s=1.0).performs_operation is True


# --- waiting ----------------------------------------------------------------------------------


async def test_wait_for_is_woken_by_a_change() -> None:
    state = SandboxState(filler_staff=0)
    case = new_case(state)
    waiter = asyncio.create_task(state.wait_for(lambda s: len(s.notes(case.case_id)) >= 1, timeout=5))
    for _ in range(3):  # let the waiter run up to its wait (scheduling, not timing)
        await asyncio.sleep(0)
    assert not waiter.done()
    state.add_staff_message(
        case.case_id,
        staff_id=state.bot_staff_id,
        content="n",
        content_html="",
        files=[],
        base_url=BASE,
        note=True,
    )
    await asyncio.wait_for(waiter, timeout=5)


async def test_wait_for_returns_at_once_when_already_true_and_times_out_otherwise() -> None:
    state = SandboxState(filler_staff=0)
    await state.wait_for(lambda s: s.bot_staff_id > 0, timeout=1)
    with pytest.raises(TimeoutError):
        await state.wait_for(lambda s: False, timeout=0.05)


def test_a_sandbox_started_later_numbers_its_cases_and_messages_higher() -> None:
    # omnibot's database outlives a sandbox process: a restarted sandbox must not reuse ids.
    first, later = SandboxState(ids_after=1_800_000_000), SandboxState(ids_after=1_800_000_001)
    first_cases = [first.open_case(user=first.user_for(name="a"), subject="s") for _ in range(50)]
    first_messages = [
        first.add_customer_message(c.case_id, text="x", files=[], base_url=BASE) for c in first_cases
    ]
    case = later.open_case(user=later.user_for(name="b"), subject="s")
    message = later.add_customer_message(case.case_id, text="y", files=[], base_url=BASE)
    assert case.case_id > max(c.case_id for c in first_cases)
    assert message.message_id > max(m.message_id for m in first_messages)
    assert later.bot_staff_id == first.bot_staff_id and later.bot_label_id == first.bot_label_id
