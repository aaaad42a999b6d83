"""The playground's views, pure: authors and notes, what the customer sees, files, masked webhook
secrets, the API calls of one case, and the faults in force."""

from __future__ import annotations

from omnibot.sandbox.faults import FaultResponse
from omnibot.sandbox.playground.views import Clocks, case_view, faults_view, file_size, mask_url
from omnibot.sandbox.records import NewFile, RecordedRequest
from omnibot.sandbox.state import SandboxState

BASE = "http://sandbox.test"


def test_mask_url_cuts_the_secret_short_and_leaves_other_urls_alone() -> None:
    url = "http://127.0.0.1:8080/webhooks/omnidesk/7/KqQx9fd345iK8V6Nep_Z9aH"
    assert mask_url(url) == "http://127.0.0.1:8080/webhooks/omnidesk/7/KqQx…aH"
    assert mask_url("http://hook/short") == "http://hook/short"
    assert mask_url("http://example.com") == "http://example.com"


def test_file_sizes_read_like_a_person_writes_them() -> None:
    assert [file_size(n) for n in (304, 2048, 5 * 1024 * 1024)] == ["304 B", "2.0 KB", "5.0 MB"]


def test_case_view_names_authors_marks_notes_and_hides_them_from_the_customer() -> None:
    state = SandboxState(filler_staff=1)
    case = state.open_case(user=state.user_for(name="Анна"), subject="x")
    state.add_customer_message(
        case.case_id,
        text="фото",
        files=[
            NewFile(name="a.png", content=b"1", mime_type="image/png"),
            NewFile(name="b.svg", content=b"<svg/>", mime_type="image/svg+xml"),
        ],
        base_url=BASE,
    )
    state.add_staff_message(
        case.case_id, staff_id=state.bot_staff_id, content="ok", content_html="", files=[], base_url=BASE
    )
    state.add_staff_message(
        case.case_id,
        staff_id=state.bot_staff_id,
        content="for staff",
        content_html="",
        files=[],
        base_url=BASE,
        note=True,
    )
    operator = state.operator_for(case.case_id)
    state.add_staff_message(
        case.case_id, staff_id=operator.staff_id, content="I'm here", content_html="", files=[], base_url=BASE
    )
    state.start_request(
        RecordedRequest(
            method="POST",
            path=f"/api/cases/{case.case_id}/note.json",
            query={},
            headers={},
            time=state.clock(),
        )
    )
    state.start_request(
        RecordedRequest(method="GET", path="/api/staff.json", query={}, headers={}, time=state.clock())
    )
    view = case_view(state, case.case_id, Clocks.of(state))
    assert view is not None
    assert [(line.author, line.author_name, line.note) for line in view.operator_lines] == [
        ("customer", "Анна", False),
        ("bot", "Бот", False),
        ("bot", "Бот", True),
        ("operator", "Оператор 1", False),
    ]
    assert [line.text for line in view.customer_lines] == ["фото", "ok", "I'm here"]
    png, svg = view.operator_lines[0].files
    assert (png.preview, svg.preview) == (True, False)  # SVG may carry script: never inline
    assert png.href.startswith("/sandbox/attachments/")
    assert [(c.method, c.status) for c in view.calls] == [("POST", "…")]  # only this case's, in flight
    assert case_view(state, 999, Clocks.of(state)) is None


def test_faults_view_lists_what_is_queued_and_an_outage_in_force() -> None:
    now = [1000.0]
    state = SandboxState(filler_staff=0, clock=lambda: now[0], wall_clock=lambda: 1_800_000_000.0)
    state.faults.add(method="POST", path="messages", responses=[FaultResponse(status=503)], times=2)
    state.start_outage(30, 502)
    view = faults_view(state, Clocks.of(state))
    assert [(f.method, f.path, f.remaining) for f in view.faults] == [("POST", "messages", 2)]
    assert view.outage.startswith("every API call answers 502 until ")
    now[0] += 31
    assert faults_view(state, Clocks.of(state)).outage == ""
