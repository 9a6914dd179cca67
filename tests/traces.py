"""Reading back what a test service traced: the experiment's traces, once they are stored."""

from __future__ import annotations

import asyncio
from typing import Any

from mlflow.entities import Trace
from mlflow.tracking import MlflowClient

from agent_service.keys import AGENT, GATE
from tests.wire import Client


async def traces_of(client: Client, count: int) -> list[Trace]:
    """The experiment's traces, oldest first, once `count` of them are stored. The server
    runs on this event loop: the store is read in a thread, and the wait yields to it."""
    assert client.app is not None
    tracer = client.app[AGENT].tracer
    info = tracer.status
    store = MlflowClient(info.destination)
    gate = client.app[GATE]
    async with asyncio.timeout(30):
        # A request whose client left ends its trace when its handler is cancelled.
        while gate.in_flight:  # noqa: ASYNC110 - the gate has no event to wait on
            await asyncio.sleep(0.01)
    assert await tracer.flush(), "the export process stored every finished trace"

    def read() -> list[Trace]:
        order = ["timestamp_ms ASC"]
        return list(store.search_traces(locations=[info.experiment_id], order_by=order))

    traces = await asyncio.to_thread(read)
    assert len(traces) == count, [t.info.trace_id for t in traces]
    return traces


def spans_by_name(trace: Trace) -> dict[str, Any]:
    return {span.name: span for span in trace.data.spans}
