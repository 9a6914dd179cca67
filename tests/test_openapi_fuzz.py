"""The API against its own OpenAPI document: schemathesis generates requests from the bundled
schemas — valid ones, and broken ones — and checks every answer: never a 5xx, only documented
statuses and content types, JSON bodies in their documented shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.processes import BIN, ServerProcess, free_port, running_server

# Examples per operation and mode: enough to reach every branch of the schemas, bounded in
# time (schemathesis' pytest plugin does not run on this pytest; its strategies do).
EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    port = free_port()
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    args = [str(BIN / "agent-server"), "--port", str(port)]
    with running_server(args, {"AGENT_TRACING": "false"}, log, port) as server:
        yield server


Operation = schemathesis.APIOperation[Any, Any, Any, Any]


def operations(base_url: str) -> list[Operation]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    found = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the document has an unusable operation: {result}"
        found.append(result.ok())
    return found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_matches_its_openapi_document(
    live_server: ServerProcess, mode: GenerationMode
) -> None:
    found = operations(live_server.base_url)
    assert {op.path for op in found} >= {"/invocations", "/v1/chat/completions", "/v1/responses"}
    for operation in found:
        if mode == GenerationMode.NEGATIVE and (
            operation.method.upper() != "POST" or not len(operation.body)
        ):
            continue  # a GET, or a POST without a body (cancel), has nothing to break

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=live_server.base_url, checks=CHECKS)

        check()
    log = live_server.log()
    assert "Unhandled error" not in log
    assert "Traceback" not in log
