"""The chat page's routes over HTTP: the page and its files (security headers, caching,
compression, size), the session route, and the feedback route's refusals."""

from __future__ import annotations

import asyncio
import gzip
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from mlflow.tracking import MlflowClient

from agent_service.http.ui import CONTENT_SECURITY_POLICY
from agent_service.http.ui_assets import UI_DIR, UiAssets
from agent_service.observability.feedback import FEEDBACK_NAME, trace_url_template
from tests.conftest import ServiceFactory
from tests.traces import traces_of
from tests.wire import HELLO_RESPONSES

# The budget for everything the page loads.
MAX_PAGE_BYTES = 100 * 1024


async def asset_urls(client: TestClient[Any, Any]) -> list[str]:
    html = await (await client.get("/")).text()
    return ["/" + path for path in re.findall(r'(?:src|href)="(ui/assets/[^"]+)"', html)]


async def test_the_page_is_served_with_a_strict_content_security_policy(
    service: TestClient[Any, Any],
) -> None:
    response = await service.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert csp == CONTENT_SECURITY_POLICY
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'"):
        assert directive in csp
    assert "unsafe" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"
    html = await response.text()
    # No inline script or style for the policy to forbid: every script has a src.
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None


async def test_assets_are_immutable_and_revalidation_answers_304(
    service: TestClient[Any, Any],
) -> None:
    urls = await asset_urls(service)
    assert {url.rsplit("/", 1)[1] for url in urls} == {"icon.svg", "style.css", "main.js"}
    for url in urls:
        response = await service.get(url)
        assert response.status == 200, url
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        again = await service.get(url, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status == 304
    index = await service.get("/")
    assert (await service.get("/", headers={"If-None-Match": index.headers["ETag"]})).status == 304


async def test_javascript_modules_have_a_javascript_type_and_come_gzipped(
    service: TestClient[Any, Any],
) -> None:
    main = next(url for url in await asset_urls(service) if url.endswith("main.js"))
    response = await service.get(main, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(await response.read())
    assert body == (UI_DIR / "main.js").read_bytes()
    # Modules import each other relatively, under the same build.
    sibling = main.replace("main.js", "markdown.js")
    assert (await service.get(sibling)).status == 200


async def test_an_asset_of_another_build_is_not_found(service: TestClient[Any, Any]) -> None:
    response = await service.get("/ui/assets/0000000000000000/main.js")
    assert response.status == 404
    assert (await response.json())["error"]["type"] == "invalid_request_error"
    assert (await service.get(f"/ui/assets/{UiAssets.load().build}/nope.js")).status == 404


def test_the_page_is_small_and_asks_nothing_of_other_origins() -> None:
    assets = UiAssets.load()
    assert assets.total_bytes < MAX_PAGE_BYTES
    for path in sorted(UI_DIR.iterdir()):
        text = path.read_text()
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), f"{path.name} names {urls}"
        for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function"):
            assert unsafe not in text, f"{path.name} uses {unsafe}"


async def test_with_api_keys_the_page_loads_but_the_api_needs_a_key(
    make_service: ServiceFactory,
) -> None:
    client = await make_service({"AGENT_API_KEYS": "k1"})
    assert (await client.get("/")).status == 200
    for url in await asset_urls(client):
        assert (await client.get(url)).status == 200
    assert (await client.get("/ui/session")).status == 401
    assert (await client.post("/ui/feedback", json={})).status == 401
    authorised = await client.get("/ui/session", headers={"Authorization": "Bearer k1"})
    assert authorised.status == 200


async def test_the_session_names_the_forwarded_user(service: TestClient[Any, Any]) -> None:
    anonymous = await (await service.get("/ui/session")).json()
    assert anonymous["user"] is None
    assert anonymous["feedback"] is False  # tracing is off in this test
    assert anonymous["trace_url"] is None
    headers = {
        "X-Forwarded-User": "1234@5678",
        "X-Forwarded-Email": "ada@example.com",
        "X-Forwarded-Preferred-Username": "ada",
    }
    session = await (await service.get("/ui/session", headers=headers)).json()
    assert session["user"] == {"name": "ada", "email": "ada@example.com"}
    assert session["agent"]["name"] == "agent-service"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"rating": "up"}, "$"),
        ({"trace_id": "tr-1", "rating": "meh"}, "$.rating"),
        ({"trace_id": "tr-1", "rating": "up", "comment": "x" * 4001}, "$.comment"),
        ({"trace_id": "<script>", "rating": "up"}, "$.trace_id"),
        ({"trace_id": "tr-1", "rating": "up", "extra": 1}, "$"),
        ({"trace_id": "tr-1", "rating": "up", "idempotency_key": "a b"}, "$.idempotency_key"),
    ],
)
async def test_bad_feedback_is_refused_with_the_field_named(
    service: TestClient[Any, Any], body: dict[str, Any], param: str
) -> None:
    response = await service.post("/ui/feedback", json=body)
    assert response.status == 400
    assert (await response.json())["error"]["param"] == param


async def test_feedback_without_tracing_says_it_cannot_be_recorded(
    service: TestClient[Any, Any],
) -> None:
    response = await service.post("/ui/feedback", json={"trace_id": "tr-1", "rating": "up"})
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "feedback_unavailable"


async def test_feedback_on_an_unknown_trace_is_not_found(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    client = await make_service(
        {
            "AGENT_TRACING": "true",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
            "MLFLOW_EXPERIMENT_NAME": f"test-{uuid.uuid4().hex[:12]}",
        }
    )
    trace_id = "tr-" + uuid.uuid4().hex
    response = await client.post("/ui/feedback", json={"trace_id": trace_id, "rating": "up"})
    assert response.status == 404
    error = (await response.json())["error"]
    assert trace_id in error["message"]
    assert error["code"] == "trace_not_found"  # the page asks again: it may be on its way


async def test_feedback_sent_again_with_its_key_is_recorded_once(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """A retry (or a reloaded page) sends the same verdict again, maybe while the first
    request is still waiting for the trace: one assessment, the same id to both."""
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = await make_service({"AGENT_TRACING": "true", "MLFLOW_TRACKING_URI": tracking_uri})
    answer = await client.post("/v1/responses", json=HELLO_RESPONSES)
    assert answer.status == 200
    trace_id = answer.headers["x-mlflow-trace-id"]
    [_] = await traces_of(client, 1)  # stored
    verdict = {"trace_id": trace_id, "rating": "down", "idempotency_key": "k" * 32}
    first, again = await asyncio.gather(
        client.post("/ui/feedback", json=verdict), client.post("/ui/feedback", json=verdict)
    )
    assert (first.status, again.status) == (200, 200)
    recorded = (await first.json())["assessment_id"]
    assert (await again.json())["assessment_id"] == recorded
    # A changed mind under a new key replaces it; its retry changes nothing more.
    change = {**verdict, "rating": "up", "idempotency_key": "m" * 32, "assessment_id": recorded}
    replaced = [await (await client.post("/ui/feedback", json=change)).json() for _ in range(2)]
    assert replaced[0]["assessment_id"] == replaced[1]["assessment_id"] != recorded

    def read() -> list[Any]:
        trace = MlflowClient(tracking_uri).get_trace(trace_id, display=False)
        return [a for a in trace.info.assessments if a.name == FEEDBACK_NAME]

    feedback = await asyncio.to_thread(read)
    assert sorted((a.feedback.value, a.valid is not False) for a in feedback) == [
        (False, False),
        (True, True),
    ]


@pytest.mark.parametrize(
    ("uri", "host", "expected"),
    [
        ("sqlite:///mlflow.db", None, None),
        (
            "http://user:secret@mlflow.internal:5000/",
            None,
            "http://mlflow.internal:5000/#/experiments/7/traces?selectedEvaluationId={trace_id}",
        ),
        (
            "databricks",
            "adb-1.azuredatabricks.net",
            "https://adb-1.azuredatabricks.net/ml/experiments/7/traces"
            "?selectedEvaluationId={trace_id}",
        ),
        ("databricks", None, None),
    ],
)
def test_trace_links_point_at_the_tracking_servers_ui(
    uri: str, host: str | None, expected: str | None
) -> None:
    assert trace_url_template(uri, "7", host) == expected


async def test_the_conversation_list_is_the_callers_own_most_recent_first(
    make_service: ServiceFactory,
) -> None:
    client = await make_service()  # a SQLite state store in the test's folder
    ada = {"X-Forwarded-User": "1@1", "X-Forwarded-Email": "ada@example.com"}
    eve = {"X-Forwarded-User": "2@1", "X-Forwarded-Email": "eve@example.com"}
    session = await (await client.get("/ui/session", headers=ada)).json()
    assert session["conversations"] == "server"
    ids = []
    for title in ("first", "second"):
        created = await client.post(
            "/v1/conversations", json={"metadata": {"title": title}}, headers=ada
        )
        ids.append((await created.json())["id"])
    await client.post("/v1/conversations", json={"metadata": {"title": "eve's"}}, headers=eve)
    # Adding to the first makes it the most recent.
    added = await client.post(
        f"/v1/conversations/{ids[0]}/items",
        json={"items": [{"type": "message", "role": "user", "content": "hi"}]},
        headers=ada,
    )
    assert added.status == 200
    listed = await (await client.get("/ui/conversations", headers=ada)).json()
    assert [(c["id"], c["title"]) for c in listed["data"]] == [
        (ids[0], "first"),
        (ids[1], "second"),
    ]


async def test_without_a_state_store_the_page_keeps_conversations_itself(
    make_service: ServiceFactory,
) -> None:
    client = await make_service({"STATE_STORE": "off"})
    session = await (await client.get("/ui/session")).json()
    assert session["conversations"] == "browser"
    response = await client.get("/ui/conversations")
    assert response.status == 404
