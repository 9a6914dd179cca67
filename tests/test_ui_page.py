"""The chat page in a real browser (Debian's Chromium driven by Playwright) against the real
service: streaming, stop, errors, hostile Markdown, feedback into MLflow, conversations.

Every wait is on a condition (an element, a text, an event of the fake model endpoint, a
metric), never on a sleep.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from mlflow.entities import Feedback
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Playwright,
    Response,
    expect,
    sync_playwright,
)

from agent_service.observability.feedback import FEEDBACK_NAME
from agent_service.observability.spool import EXPORTER_LOCK, prepare, spool_dir_for, try_lock
from tests.chromium import LAUNCH_ARGS, chromium_or_skip
from tests.fakes.openai_server import Behaviour
from tests.live_service import LiveService, live_service
from tests.processes import BIN, free_port, running_server

# Generous: a loaded 2-core machine starts Chromium and MLflow slowly; waits end on conditions.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = chromium_or_skip()
    browser = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
    yield browser
    browser.close()


class PageProbe:
    """A page plus what it did: console errors (CSP violations land there) and every URL
    it requested."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        # The x-mlflow-trace-id of every answer the service started.
        self.trace_ids: list[str] = []
        page.on("console", self._console)
        page.on("response", self._response)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("request", lambda request: self.requests.append(request.url))

    def _response(self, response: Response) -> None:
        if trace_id := response.headers.get("x-mlflow-trace-id"):
            self.trace_ids.append(trace_id)

    def _console(self, message: ConsoleMessage) -> None:
        # A failed API call is logged by the browser as a failed resource; that is expected
        # in the error tests and asserted on the page instead.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(message.text)


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., PageProbe]]:
    contexts = []

    def open_(base_url: str, *, ready: bool = True, **context_options: object) -> PageProbe:
        context = browser.new_context(**context_options)  # type: ignore[arg-type]
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        probe = PageProbe(context.new_page())
        probe.page.goto(base_url + "/")
        if ready:  # the page has its session and shows the conversation of its URL
            expect(probe.page.locator("#app")).to_have_attribute("data-ready", "true")
        return probe

    yield open_
    for context in contexts:
        context.close()


def send(page: Page, text: str) -> None:
    page.locator("#prompt").fill(text)
    page.locator("#prompt").press("Enter")


def last_answer(page: Page) -> tuple[Locator, Locator]:
    article = page.locator("article.turn").last
    return article, article.locator(".answer-body")


def metric(service: LiveService, name: str, labels: str) -> float:
    text = httpx.get(service.base_url + "/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def wait_for_metric(service: LiveService, name: str, labels: str, at_least: float) -> float:
    """Poll /metrics until the value is reached (a bounded wait on a condition)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while (value := metric(service, name, labels)) < at_least:
        assert time.monotonic() < deadline, f"{name}{{{labels}}} stayed at {value}"
        time.sleep(0.05)
    return value


def test_an_answer_streams_in_token_by_token(open_page: Callable[..., PageProbe]) -> None:
    with live_service(fake_openai=True) as service:
        fake = service.fake
        assert fake is not None
        # The fake model sends "Hello from" and then holds the rest until the test says so.
        fake.behaviour = Behaviour(pause_after_chunks=3)
        probe = open_page(service.base_url)
        page = probe.page
        send(page, "Say hello")
        service.wait(lambda: fake.paused)
        article, body = last_answer(page)
        expect(body).to_have_text("Hello from")  # part of the answer, shown while it streams
        expect(page.locator("#stop")).to_be_visible()
        expect(page.locator("#send")).to_be_hidden()
        service.call(fake.resume.set)
        expect(article).to_have_attribute("data-status", "completed")
        expect(body).to_have_text("Hello from the fake model.")
        expect(page.locator("#send")).to_be_visible()
        assert probe.errors == []
        # Nothing but this service was asked for anything.
        assert probe.requests
        assert all(url.startswith(service.base_url + "/") for url in probe.requests)


@pytest.mark.parametrize(
    ("how", "state_store"),
    [("button", False), ("Escape", True)],
    ids=["button-conversation-in-browser", "escape-conversation-on-server"],
)
def test_stop_cancels_the_run_on_the_server(
    open_page: Callable[..., PageProbe], tmp_path: Path, how: str, state_store: bool
) -> None:
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {"AGENT_TRACING": "true", "MLFLOW_TRACKING_URI": tracking_uri}
    if state_store:
        env["STATE_STORE"] = f"sqlite:///{tmp_path / 'state.db'}"
    with live_service(env, fake_openai=True) as service:
        fake = service.fake
        assert fake is not None
        fake.behaviour = Behaviour(pause_after_chunks=2)  # "Hello", then silence
        probe = open_page(service.base_url)
        page = probe.page
        send(page, "Talk for a long time")
        service.wait(lambda: fake.paused)
        article, body = last_answer(page)
        expect(body).to_have_text("Hello")
        if how == "button":
            page.get_by_role("button", name="Stop").click()
        else:
            page.keyboard.press("Escape")
        expect(article.locator(".note")).to_have_text("Stopped.")
        # The run stopped on the server: the model call was cancelled, and the metrics say why.
        service.wait(lambda: fake.cancelled)
        wait_for_metric(
            service, "agent_cancellations_total", 'reason="client_disconnected"', at_least=1
        )
        expect(body).to_have_text("Hello")  # what had arrived stays
        expect(page.locator("#send")).to_be_visible()
        [trace_id] = probe.trace_ids
    # …and so does the trace.
    mlflow.flush_trace_async_logging()
    trace = MlflowClient(tracking_uri).get_trace(trace_id)
    assert trace.info.state == "ERROR"
    assert trace.data.spans[0].get_attribute("agent_service.end_reason") == "client_disconnected"


def stored_answer(page: Page, on_server: bool = False) -> dict[str, Any]:
    """What the page stored in the browser about the first answer of the conversation of
    its URL (all of it, or with the state store only its notes: trace id, feedback)."""
    answer: dict[str, Any] = page.evaluate(
        """(onServer) => {
            const id = location.hash.slice(1);
            if (onServer) {
                return JSON.parse(localStorage.getItem('agent-service.notes.' + id) || '[{}]')[0];
            }
            const c = JSON.parse(localStorage.getItem('agent-service.conversation.' + id));
            return c.turns[0].answer;
        }""",
        on_server,
    )
    return answer


def test_an_upstream_failure_shows_the_error_and_retry_works(
    open_page: Callable[..., PageProbe],
) -> None:
    with live_service(fake_openai=True) as service:
        fake = service.fake
        assert fake is not None
        fake.behaviour = Behaviour(status=500)
        page = open_page(service.base_url).page
        send(page, "Hello?")
        article, body = last_answer(page)
        error = article.locator(".error")
        expect(error).to_be_visible()
        expect(error.locator(".error-message")).to_contain_text("model endpoint")
        expect(error.locator(".error-details")).to_contain_text("code upstream_error")
        details = error.locator(".error-details").inner_text()
        assert re.search(r"request id [0-9a-f]{32}", details), details
        # The upstream recovers; Retry asks again and the answer replaces the error.
        fake.behaviour = Behaviour()
        error.get_by_role("button", name="Retry").click()
        expect(article).to_have_attribute("data-status", "completed")
        expect(body).to_have_text("Hello from the fake model.")
        expect(error).to_have_count(0)


def test_a_stream_cut_by_the_upstream_ends_in_an_error_not_a_complete_answer(
    open_page: Callable[..., PageProbe],
) -> None:
    with live_service(fake_openai=True) as service:
        assert service.fake is not None
        service.fake.behaviour = Behaviour(drop_after_chunks=3)
        page = open_page(service.base_url).page
        send(page, "Hello?")
        article, _ = last_answer(page)
        expect(article).to_have_attribute("data-status", "failed")
        expect(article.locator(".error .error-message")).to_be_visible()
        expect(article.locator(".error .retry")).to_be_visible()


HOSTILE = "\n".join(
    [
        "# Report",
        "<script>window.__pwned = 'script'</script>",
        '<img src="x" onerror="window.__pwned = \'img\'">',
        "<svg onload=\"window.__pwned = 'svg'\"></svg>",
        "<iframe src=\"javascript:parent.__pwned='iframe'\"></iframe>",
        "[click me](javascript:window.__pwned='link')",
        "[shout](JaVaScRiPt:window.__pwned='case')",
        "[data](data:text/html,<script>parent.__pwned='data'</script>)",
        "![pic](javascript:window.__pwned='image')",
        "<a href=\"javascript:window.__pwned='raw'\">raw link</a>",
        "[safe](https://example.com/docs)",
        "",
        "- one",
        "- two with `code`",
        "",
        "| a | b |",
        "|---|--:|",
        "| 1 | **2** |",
        "",
        "```python",
        "print('<b>not bold</b>')",
        "```",
    ]
)


def test_hostile_markdown_renders_as_text_and_never_runs(
    open_page: Callable[..., PageProbe], tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": HOSTILE}]))
    with live_service({"OFFLINE_SCRIPT": str(script)}) as service:
        probe = open_page(service.base_url)
        page = probe.page
        send(page, "Write a report")
        article, _ = last_answer(page)
        expect(article).to_have_attribute("data-status", "completed")
        answer = page.locator("article.turn .answer-body")
        # Safe Markdown became elements…
        expect(answer.locator("h1")).to_have_text("Report")
        expect(answer.locator("ul > li")).to_have_count(2)
        expect(answer.locator("table td.align-right strong")).to_have_text("2")
        expect(answer.locator("pre code")).to_have_text("print('<b>not bold</b>')")
        # Code blocks have a Copy button that copies the code as text.
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        answer.get_by_role("button", name="Copy the code").click()
        expect(answer.get_by_role("button", name="Copy the code")).to_have_text("Copied")
        assert page.evaluate("() => navigator.clipboard.readText()") == ("print('<b>not bold</b>')")
        safe = answer.locator("a")
        expect(safe).to_have_count(1)
        expect(safe).to_have_attribute("href", "https://example.com/docs")
        expect(safe).to_have_attribute("rel", "noopener noreferrer nofollow")
        # …and everything else is text: no element that could run script exists.
        for tag in ("script", "img", "svg", "iframe", "object", "embed", "b"):
            expect(answer.locator(tag)).to_have_count(0)
        expect(answer).to_contain_text("<script>window.__pwned = 'script'</script>")
        expect(answer).to_contain_text("click me")
        # Clicking what would have been a javascript: link does nothing.
        answer.get_by_text("click me").click()
        answer.get_by_text("raw link").click()
        assert page.evaluate("() => window.__pwned") is None
        assert not page.evaluate(
            "() => [...document.querySelectorAll('[onerror],[onload],[onclick]')].length"
        )
        assert probe.errors == []
        assert all(url.startswith(service.base_url + "/") for url in probe.requests)


# The export process stores a trace a moment after its answer; started afresh on a loaded
# machine (a Python process importing MLflow) it can take many seconds.
TRACE_STORED_S = 90


def wait_for_stored_trace(tracking_uri: str, trace_id: str) -> None:
    """Poll MLflow's store until the trace can be read (a bounded wait on a condition)."""
    store = MlflowClient(tracking_uri)
    deadline = time.monotonic() + TRACE_STORED_S
    while True:
        try:
            store.get_trace(trace_id, display=False)
        except MlflowException:
            assert time.monotonic() < deadline, f"trace {trace_id} was not stored"
            time.sleep(0.1)
        else:
            return


def user_feedback(tracking_uri: str, trace_id: str) -> list[Feedback]:
    """The users' feedback on the trace, read back with MLflow's own client."""
    trace = MlflowClient(tracking_uri).get_trace(trace_id, display=False)
    return [
        a for a in trace.info.assessments if isinstance(a, Feedback) and a.name == FEEDBACK_NAME
    ]


def test_feedback_is_recorded_on_the_trace_in_mlflow(
    open_page: Callable[..., PageProbe], tmp_path: Path
) -> None:
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {"AGENT_TRACING": "true", "MLFLOW_TRACKING_URI": tracking_uri}
    # What the Databricks Apps proxy adds to every request of a signed-in user.
    ada = {"X-Forwarded-User": "4242@1", "X-Forwarded-Email": "ada@example.com"}
    with live_service(env) as service:
        page = open_page(service.base_url, extra_http_headers=ada).page
        expect(page.locator("#user")).to_have_text("ada@example.com")
        send(page, "Hello")
        article, _ = last_answer(page)
        expect(article).to_have_attribute("data-status", "completed")
        feedback = article.locator(".feedback")
        # A local SQLite store has no UI to link to.
        expect(feedback.locator(".trace-link")).to_have_count(0)
        # Rated once the trace is stored (a trace still on its way: the next test).
        wait_for_stored_trace(tracking_uri, stored_answer(page)["traceId"])
        feedback.get_by_role("button", name="Bad answer").click()
        expect(feedback.locator(".feedback-status")).to_have_text("Thanks, feedback recorded.")
        # Changed mind: thumbs up, with a comment.
        feedback.get_by_role("button", name="Good answer").click()
        expect(feedback.get_by_role("button", name="Good answer")).to_have_attribute(
            "aria-pressed", "true"
        )
        feedback.get_by_label("Comment on this answer (optional)").fill("Clear and short.")
        feedback.get_by_role("button", name="Send comment").click()
        expect(feedback.locator(".feedback-status")).to_have_text("Thanks, comment recorded.")
        trace_id = stored_answer(page)["traceId"]
        # Another signed-in user cannot rate Ada's answer: to them the trace does not exist.
        other = {"X-Forwarded-User": "7@1", "X-Forwarded-Email": "eve@example.com"}
        refused = httpx.post(
            service.base_url + "/ui/feedback",
            json={"trace_id": trace_id, "rating": "down"},
            headers=other,
            timeout=30,
        )
        assert refused.status_code == 404
    # Read back with MLflow's own client: the valid feedback is the last verdict, Ada's.
    feedback_entries = user_feedback(tracking_uri, trace_id)
    valid = [a for a in feedback_entries if a.valid is not False]
    assert len(feedback_entries) == 3
    assert len(valid) == 1
    assert valid[0].value is True
    assert valid[0].rationale == "Clear and short."
    assert valid[0].source.source_type == "HUMAN"
    assert valid[0].source.source_id == "ada@example.com"
    trace = MlflowClient(tracking_uri).get_trace(trace_id, display=False)
    assert trace.info.trace_metadata["mlflow.trace.user"] == "ada@example.com"


def test_feedback_given_before_the_trace_is_stored_is_sent_until_it_is(
    open_page: Callable[..., PageProbe], tmp_path: Path
) -> None:
    """A thumb clicked the moment the answer ends, while its trace is still on its way to the
    store: the click is kept (through a reload too) and recorded once the trace is there."""
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    spools = tmp_path / "spools"
    spool = spool_dir_for(tracking_uri, str(spools))
    prepare(spool)
    # An export process that is not exporting (slow to start, busy): traces wait in the spool.
    held = try_lock(spool / EXPORTER_LOCK)
    assert held is not None
    env = {
        "AGENT_TRACING": "true",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "TRACE_SPOOL_DIR": str(spools),
    }
    try:
        with live_service(env) as service:
            page = open_page(service.base_url).page
            send(page, "Hello")
            article, _ = last_answer(page)
            expect(article).to_have_attribute("data-status", "completed")
            feedback = article.locator(".feedback")
            good = feedback.get_by_role("button", name="Good answer")
            with page.expect_response(lambda r: r.url.endswith("/ui/feedback")) as first:
                good.click()
                expect(good).to_have_attribute("aria-pressed", "true")  # at once
                expect(feedback.locator(".feedback-status")).to_have_text("Sending…")
            assert first.value.status == 404  # the service waited, but not for ever
            expect(feedback.locator(".feedback-status")).to_have_text(
                "Waiting for the trace of this answer to be stored…"
            )
            # The page is reloaded before the trace is stored: the choice is still there…
            page.reload()
            expect(page.locator("#app")).to_have_attribute("data-ready", "true")
            feedback = page.locator("article.turn .feedback")
            good = feedback.get_by_role("button", name="Good answer")
            expect(good).to_have_attribute("aria-pressed", "true")
            # …and once the trace reaches the store, it is recorded.
            os.close(held)
            held = None
            expect(feedback.locator(".feedback-status")).to_have_text(
                "Thanks, feedback recorded.", timeout=TRACE_STORED_S * 1000
            )
            answer = stored_answer(page)
            assert answer["feedbackPending"] is None
    finally:
        if held is not None:
            os.close(held)
    # Sent more than once (before and after the reload), recorded once.
    [recorded] = user_feedback(tracking_uri, answer["traceId"])
    assert recorded.value is True
    assert recorded.assessment_id == answer["feedback"]["assessmentId"]


def test_feedback_that_cannot_be_recorded_says_why_with_its_request_id_once(
    open_page: Callable[..., PageProbe], tmp_path: Path
) -> None:
    env = {
        "AGENT_TRACING": "true",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "AGENT_API_KEYS": "right-key",
    }
    with live_service(env) as service:
        page = open_page(service.base_url, ready=False).page
        page.get_by_label("Key (kept in this tab only)").fill("right-key")
        page.get_by_role("button", name="Use key").click()
        send(page, "Hello")
        article, _ = last_answer(page)
        expect(article).to_have_attribute("data-status", "completed")
        # The key is gone by the time of the click (say, another tab cleared it).
        page.evaluate("() => sessionStorage.clear()")
        feedback = article.locator(".feedback")
        feedback.get_by_role("button", name="Bad answer").click()
        status = feedback.locator(".feedback-status")
        expect(status).to_contain_text("Feedback not recorded: ")
        text = status.inner_text()
        assert re.fullmatch(r"Feedback not recorded: .+ \(request id [0-9a-f]{32}\)", text), text
        assert text.count("request id") == 1
        # Not recorded, so not shown as given.
        expect(feedback.get_by_role("button", name="Bad answer")).to_have_attribute(
            "aria-pressed", "false"
        )


def test_a_conversation_continues_after_a_reload(open_page: Callable[..., PageProbe]) -> None:
    with live_service(fake_openai=True) as service:
        fake = service.fake
        assert fake is not None
        page = open_page(service.base_url).page
        send(page, "My name is Ada.")
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")
        page.reload()
        expect(page.locator("#app")).to_have_attribute("data-ready", "true")
        # The conversation is back, and listed in the sidebar as the current one.
        expect(page.locator(".bubble")).to_have_text(["My name is Ada."])
        expect(page.locator(".conversation.current .conversation-open")).to_have_text(
            "My name is Ada."
        )
        send(page, "What is my name?")
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")
        # The model saw the whole conversation, the first answer included.
        messages = fake.requests[-1].body["messages"]
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", "My name is Ada."),
            ("assistant", "Hello from the fake model."),
            ("user", "What is my name?"),
        ]


def test_new_chat_rename_and_delete(open_page: Callable[..., PageProbe]) -> None:
    with live_service() as service:
        page = open_page(service.base_url).page
        send(page, "First chat")
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")
        page.get_by_role("button", name="New chat").click()
        expect(page.locator("article.turn")).to_have_count(0)
        send(page, "Second chat")
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")
        titles = page.locator(".conversation-open")
        expect(titles).to_have_text(["Second chat", "First chat"])
        # Rename with the keyboard.
        page.get_by_role("button", name="Rename “First chat”").click()
        page.get_by_label("Conversation title").fill("Renamed")
        page.get_by_label("Conversation title").press("Enter")
        expect(titles).to_have_text(["Renamed", "Second chat"])
        # Delete (the browser's confirmation accepted).
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete “Second chat”").click()
        expect(titles).to_have_text(["Renamed"])
        expect(page.locator("article.turn")).to_have_count(0)  # the open chat was deleted
        page.get_by_role("button", name="Renamed", exact=True).click()
        expect(page.locator(".bubble")).to_have_text(["First chat"])


def test_api_keys_are_asked_for_once_per_tab(open_page: Callable[..., PageProbe]) -> None:
    with live_service({"AGENT_API_KEYS": "right-key"}) as service:
        probe = open_page(service.base_url, ready=False)
        page = probe.page
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()  # the page loaded; the API said 401
        page.get_by_label("Key (kept in this tab only)").fill("right-key")
        page.get_by_role("button", name="Use key").click()
        expect(dialog).to_be_hidden()
        send(page, "Hello")
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")
        # A reload in the same tab does not ask again.
        page.reload()
        expect(page.locator("#app")).to_have_attribute("data-ready", "true")
        expect(dialog).to_be_hidden()
        assert httpx.get(service.base_url + "/ui/session").status_code == 401


def test_without_a_key_the_page_loads_and_the_api_answers_401(
    open_page: Callable[..., PageProbe],
) -> None:
    with live_service({"AGENT_API_KEYS": "right-key"}) as service:
        page = open_page(service.base_url, ready=False).page
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator("#key-button")).to_be_visible()
        send(page, "Hello")
        error = page.locator("article.turn .error")
        expect(error.locator(".error-details")).to_contain_text("code invalid_api_key")
        error.get_by_role("button", name="Enter API key").click()
        page.get_by_label("Key (kept in this tab only)").fill("right-key")
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")


def test_phone_width_in_dark_mode(open_page: Callable[..., PageProbe]) -> None:
    with live_service() as service:
        page = open_page(
            service.base_url, viewport={"width": 390, "height": 800}, color_scheme="dark"
        ).page
        send(page, "Hello from a phone")
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")
        # Nothing wider than the screen; the sidebar waits behind its button.
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        expect(page.get_by_role("button", name="New chat")).to_be_hidden()
        toggle = page.get_by_role("button", name="Conversations")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(page.get_by_role("button", name="New chat")).to_be_visible()
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"


# OpenAI's event shapes for what this service does not produce yet (reasoning summaries, MCP
# calls), fed to the page's own answer module in the browser.
REASONING_AND_MCP = [
    {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
    {
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {"id": "rs_1", "type": "reasoning", "summary": []},
    },
    {
        "type": "response.reasoning_summary_part.added",
        "item_id": "rs_1",
        "output_index": 0,
        "summary_index": 0,
        "part": {"type": "summary_text", "text": ""},
    },
    {
        "type": "response.reasoning_summary_text.delta",
        "item_id": "rs_1",
        "output_index": 0,
        "summary_index": 0,
        "delta": "The user wants **docs**.",
    },
    {
        "type": "response.output_item.added",
        "output_index": 1,
        "item": {
            "id": "mcp_1",
            "type": "mcp_call",
            "server_label": "docs",
            "name": "search",
            "arguments": "",
            "status": "in_progress",
        },
    },
    {
        "type": "response.mcp_call_arguments.delta",
        "item_id": "mcp_1",
        "output_index": 1,
        "delta": '{"query": "<img src=x onerror=alert(1)>"}',
    },
    {
        "type": "response.output_item.done",
        "output_index": 1,
        "item": {
            "id": "mcp_1",
            "type": "mcp_call",
            "server_label": "docs",
            "name": "search",
            "arguments": '{"query": "<img src=x onerror=alert(1)>"}',
            "output": "3 pages found",
            "status": "completed",
        },
    },
    {
        "type": "response.output_item.added",
        "output_index": 2,
        "item": {
            "id": "mcp_2",
            "type": "mcp_call",
            "server_label": "docs",
            "name": "fetch",
            "arguments": "{}",
            "error": "page not found",
            "status": "failed",
        },
    },
    {
        "type": "response.completed",
        "response": {"id": "resp_1", "status": "completed", "metadata": {"trace_id": "tr-9"}},
    },
]


def test_reasoning_and_mcp_calls_are_shown_collapsed(
    open_page: Callable[..., PageProbe],
) -> None:
    with live_service() as service:
        page = open_page(service.base_url).page
        module = page.locator("script[type=module]").get_attribute("src")
        assert module is not None
        state = page.evaluate(
            """async ([module, events]) => {
                const answer = await import(new URL(module.replace('main.js', 'answer.js'),
                                                     document.baseURI));
                const history = await import(new URL(module.replace('main.js',
                                                     'conversations.js'), document.baseURI));
                const state = answer.emptyAnswer('req-1');
                for (const event of events) answer.applyEvent(state, event);
                const box = document.createElement('div');
                box.id = 'probe';
                document.body.append(box);
                answer.drawAnswer(box, state);
                const input = history.historyInput([{ user: 'hi', answer: state }], 'next');
                return { status: state.status, traceId: state.traceId, input };
            }""",
            [module, REASONING_AND_MCP],
        )
        assert state["status"] == "completed"
        assert state["traceId"] == "tr-9"
        # Reasoning stays out of the history; the MCP calls go back as function calls.
        assert state["input"] == [
            {"type": "message", "role": "user", "content": "hi"},
            {
                "type": "function_call",
                "call_id": "mcp_1",
                "name": "search",
                "arguments": '{"query": "<img src=x onerror=alert(1)>"}',
            },
            {"type": "function_call_output", "call_id": "mcp_1", "output": "3 pages found"},
            {"type": "function_call", "call_id": "mcp_2", "name": "fetch", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "mcp_2", "output": "page not found"},
            {"type": "message", "role": "user", "content": "next"},
        ]
        probe = page.locator("#probe")
        reasoning = probe.locator("details.reasoning")
        expect(reasoning).not_to_have_attribute("open", "")
        expect(reasoning.locator("strong")).to_have_text("docs")
        calls = probe.locator("details.tool")
        expect(calls).to_have_count(2)
        expect(calls.locator(".tool-name")).to_have_text(["docs.search", "docs.fetch"])
        expect(calls.locator(".tool-state")).to_have_text(["done", "failed"])
        calls.first.locator("summary").click()
        expect(calls.first.locator(".tool-arguments")).to_have_text(
            '{\n  "query": "<img src=x onerror=alert(1)>"\n}'
        )
        expect(calls.first.locator(".tool-result")).to_have_text("3 pages found")
        expect(probe.locator("img")).to_have_count(0)


def test_the_page_works_with_two_gunicorn_workers(
    open_page: Callable[..., PageProbe], tmp_path: Path
) -> None:
    port = free_port()
    args = [str(BIN / "agent-server"), "--port", str(port), "--workers", "2"]
    # Conversations in one SQLite store that both workers share.
    env = {"AGENT_TRACING": "false", "STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}"}
    with running_server(args, env, tmp_path / "server.log", port) as server:
        # Every worker names the same build, so a page from one loads its files from any.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=server.base_url, limits=limits, timeout=30) as client:
            pages = {client.get("/").text for _ in range(8)}
        assert len(pages) == 1
        page = open_page(server.base_url).page
        expect(page.locator("#storage-note")).to_have_text("Conversations are kept by the service.")
        send(page, "Hello")
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")
        page.reload()
        expect(page.locator(".bubble")).to_have_text(["Hello"])
        send(page, "Again")
        expect(page.locator("article.turn")).to_have_count(2)
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")


def test_a_reload_mid_answer_keeps_the_question_and_says_the_answer_was_cut(
    open_page: Callable[..., PageProbe],
) -> None:
    with live_service(fake_openai=True) as service:
        fake = service.fake
        assert fake is not None
        fake.behaviour = Behaviour(pause_after_chunks=2)
        page = open_page(service.base_url).page
        send(page, "A long question")
        service.wait(lambda: fake.paused)
        expect(last_answer(page)[1]).to_have_text("Hello")
        page.reload()
        expect(page.locator("#app")).to_have_attribute("data-ready", "true")
        expect(page.locator(".bubble")).to_have_text(["A long question"])
        expect(page.locator("article.turn")).to_have_attribute("data-status", "interrupted")
        expect(page.locator("article.turn .note")).to_have_text(
            "The page was closed or reloaded before the answer was complete."
        )
        service.wait(lambda: fake.cancelled)  # leaving the page stopped the run too


_LINK = 'target="_blank" rel="noopener noreferrer nofollow"'
MARKDOWN = [
    (
        "# H1\n\nSome *em*, **strong**, ~~del~~ and _u_.",
        "<h1>H1</h1><p>Some <em>em</em>, <strong>strong</strong>, <del>del</del> and "
        "<em>u</em>.</p>",
    ),
    ("snake_case_word", "<p>snake_case_word</p>"),
    ("- a\n  - b\n  - c\n- d", "<ul><li>a<ul><li>b</li><li>c</li></ul></li><li>d</li></ul>"),
    ("3. x\n4. y", '<ol start="3"><li>x</li><li>y</li></ol>'),
    ("1. one\n\n   more\n2. two", "<ol><li><p>one</p><p>more</p></li><li><p>two</p></li></ol>"),
    ("text\n- item", "<p>text</p><ul><li>item</li></ul>"),
    ("`` a ` b ``", "<p><code>a ` b</code></p>"),
    ("\\*not em\\*", "<p>*not em*</p>"),
    ("a  \nb", "<p>a<br>b</p>"),
    ("## Title ##", "<h2>Title</h2>"),
    ("---", "<hr>"),
    ("> quote\n> more", "<blockquote><p>quote\nmore</p></blockquote>"),
    ("**bold *nested* end**", "<p><strong>bold <em>nested</em> end</strong></p>"),
    (
        "a | b\n--- | ---\n1 | 2",
        '<div class="table-wrapper"><table><thead><tr><th>a</th><th>b</th></tr></thead>'
        "<tbody><tr><td>1</td><td>2</td></tr></tbody></table></div>",
    ),
    (
        # An unclosed fence, as while the answer streams in: code so far.
        "```js\nlet x",
        '<div class="code-block"><div class="code-language">js</div>'
        '<pre><code data-language="js">let x</code></pre></div>',
    ),
    (
        "see https://example.com/a_b.",
        f'<p>see <a href="https://example.com/a_b" {_LINK}>https://example.com/a_b</a>.</p>',
    ),
    (
        "[w](https://en.wikipedia.org/wiki/Foo_(bar))",
        f'<p><a href="https://en.wikipedia.org/wiki/Foo_(bar)" {_LINK}>w</a></p>',
    ),
    ("<mailto:a@b.c>", f'<p><a href="mailto:a@b.c" {_LINK}>mailto:a@b.c</a></p>'),
    (
        "[rel](/v1/responses) [ftp](ftp://x) [js](javascript:alert(1))",
        '<p><span class="unsafe-link">rel</span> <span class="unsafe-link">ftp</span> '
        '<span class="unsafe-link">js</span></p>',
    ),
]


def test_markdown_renders_the_subset_models_write(open_page: Callable[..., PageProbe]) -> None:
    with live_service() as service:
        page = open_page(service.base_url).page
        module = page.locator("script[type=module]").get_attribute("src")
        assert module is not None
        rendered = page.evaluate(
            """async ([module, sources]) => {
                const url = new URL(module.replace('main.js', 'markdown.js'), document.baseURI);
                const { renderMarkdown } = await import(url);
                return sources.map((source) => {
                    const box = document.createElement('div');
                    box.append(renderMarkdown(source));
                    return box.innerHTML;  // serialised for comparison, never assigned
                });
            }""",
            [module, [source for source, _ in MARKDOWN]],
        )
        assert rendered == [html for _, html in MARKDOWN]


def test_a_conversation_with_tool_calls_continues(
    open_page: Callable[..., PageProbe], tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                {
                    "text": "Let me compute.",
                    "tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}],
                },
                {"text": "It is 42."},
            ]
        )
    )
    env = {"AGENT_TOOLS": "calculator", "OFFLINE_SCRIPT": str(script)}
    with live_service(env) as service:
        page = open_page(service.base_url).page
        for question in ("What is 6*7?", "And again?"):
            send(page, question)
            article, body = last_answer(page)
            expect(article).to_have_attribute("data-status", "completed")
            # The tool call, collapsed, with its arguments and result inside; named with the
            # server that ran it (the agent's own tools are mcp_call items on /v1/responses).
            tool = article.locator("details.tool")
            expect(tool.locator(".tool-name")).to_have_text("agent-service.calculator")
            expect(tool).not_to_have_attribute("open", "")
            tool.locator("summary").click()
            expect(tool.locator(".tool-result")).to_have_text("42")
            expect(body).to_contain_text("It is 42.")
        # The second answer completed: the service took the history the page sent, the first
        # turn's tool call and result included.
        expect(page.locator("article.turn")).to_have_count(2)


def test_the_event_parser_handles_any_split_and_line_ending(
    open_page: Callable[..., PageProbe],
) -> None:
    """The page's SSE reader against the same bytes cut at every position, with LF and CRLF
    line endings, comments (heartbeats) and multi-byte characters split across chunks."""
    stream = (
        ": ping\n\n"
        'event: response.output_text.delta\ndata: {"delta":"caf\u00e9 \U0001f600"}\n\n'
        "id: 7\ndata: line one\ndata: line two\n\n"
        "data: [DONE]\n\n"
    )
    expected = [
        {
            "event": "response.output_text.delta",
            "data": '{"delta":"caf\u00e9 \U0001f600"}',
            "id": "",
        },
        {"event": "", "data": "line one\nline two", "id": "7"},
        {"event": "", "data": "[DONE]", "id": ""},
    ]
    with live_service() as service:
        page = open_page(service.base_url).page
        module = page.locator("script[type=module]").get_attribute("src")
        assert module is not None
        results = page.evaluate(
            """async ([module, variants]) => {
                const url = new URL(module.replace('main.js', 'sse.js'), document.baseURI);
                const { readEvents } = await import(url);
                const results = [];
                for (const text of variants) {
                    const bytes = new TextEncoder().encode(text);
                    for (let cut = 0; cut <= bytes.length; cut++) {
                        const body = new ReadableStream({
                            start(controller) {
                                controller.enqueue(bytes.slice(0, cut));
                                controller.enqueue(bytes.slice(cut));
                                controller.close();
                            },
                        });
                        const events = [];
                        for await (const event of readEvents(body)) events.push(event);
                        results.push(events);
                    }
                }
                return results;
            }""",
            [module, [stream, stream.replace("\n", "\r\n")]],
        )
        assert len(results) > 2 * len(stream)
        assert all(events == expected for events in results)


def test_with_the_state_store_conversations_are_kept_by_the_service(
    open_page: Callable[..., PageProbe], tmp_path: Path
) -> None:
    env = {"STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}"}
    ada = {"X-Forwarded-User": "4242@1", "X-Forwarded-Email": "ada@example.com"}
    eve = {"X-Forwarded-User": "7@1", "X-Forwarded-Email": "eve@example.com"}
    with live_service(env, fake_openai=True) as service:
        fake = service.fake
        assert fake is not None
        page = open_page(service.base_url, extra_http_headers=ada).page
        expect(page.locator("#storage-note")).to_have_text("Conversations are kept by the service.")
        send(page, "My name is Ada.")
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")
        conversation_id = page.evaluate("() => location.hash.slice(1)")
        assert conversation_id.startswith("conv_")
        # Each turn sends only the new message; the service holds the conversation.
        page.reload()
        expect(page.locator("#app")).to_have_attribute("data-ready", "true")
        expect(page.locator(".bubble")).to_have_text(["My name is Ada."])
        expect(page.locator("article.turn .answer-body")).to_have_text("Hello from the fake model.")
        send(page, "What is my name?")
        expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")
        messages = fake.requests[-1].body["messages"]
        assert [(m["role"], m["content"]) for m in messages][-3:] == [
            ("user", "My name is Ada."),
            ("assistant", "Hello from the fake model."),
            ("user", "What is my name?"),
        ]
        # Another browser of the same user finds it in the sidebar, from the service.
        elsewhere = open_page(service.base_url, extra_http_headers=ada).page
        titles = elsewhere.locator(".conversation-open")
        expect(titles).to_have_text(["My name is Ada."])
        titles.first.click()
        expect(elsewhere.locator(".bubble")).to_have_text(["My name is Ada.", "What is my name?"])
        # Rename and delete go to the service.
        elsewhere.get_by_role("button", name="Rename “My name is Ada.”").click()
        elsewhere.get_by_label("Conversation title").fill("About Ada")
        elsewhere.get_by_label("Conversation title").press("Enter")
        expect(titles).to_have_text(["About Ada"])
        stored = httpx.get(f"{service.base_url}/v1/conversations/{conversation_id}", headers=ada)
        assert stored.json()["metadata"]["title"] == "About Ada"
        # Someone else sees none of it.
        stranger = open_page(service.base_url, extra_http_headers=eve).page
        expect(stranger.locator(".conversation-list .empty")).to_have_text("No conversations yet.")
        elsewhere.once("dialog", lambda dialog: dialog.accept())
        elsewhere.get_by_role("button", name="Delete “About Ada”").click()
        expect(elsewhere.locator(".conversation-list .empty")).to_be_visible()
        gone = httpx.get(f"{service.base_url}/v1/conversations/{conversation_id}", headers=ada)
        assert gone.status_code == 404
