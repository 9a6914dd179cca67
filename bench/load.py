"""The load generator: its own process (pinned by the harness to the other core), one JSON line
of results on stdout.

Three modes:
- `closed`: N workers, each sending its next request when the last one ends (peak throughput);
- `open`: requests started at a fixed rate whatever the server does, latency measured from the
  scheduled start so a slow server cannot hide its queue (no coordinated omission);
- `hold`: open S streams at a fixed ramp rate and read them to the end (many slow streams).

Streams are read as raw bytes and split on the SSE frame separator; the first frame carrying
`response.output_text.delta` is the first token. A request succeeded when the status is 200
and (for a stream) `[DONE]` arrived with no error frame before it.

    python -m bench.load --url http://127.0.0.1:8001/invocations --mode closed \
        --concurrency 16 --duration 5 --stream --expect-tokens 64
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import orjson

from bench.answer import request_body
from bench.stats import summarize

_T = TypeVar("_T")

DELTA = b"response.output_text.delta"
DONE = b"data: [DONE]"


@dataclass(slots=True)
class Sample:
    start: float
    end: float = 0.0
    first_token: float | None = None
    opened: float | None = None  # response headers received
    events: int = 0
    deltas: int = 0
    pings: int = 0
    ok: bool = False
    error: str = ""
    detail: str = ""  # the exception's message, for the report's error samples
    request_id: str = ""  # the server's X-Request-Id


@dataclass(slots=True)
class Run:
    samples: list[Sample] = field(default_factory=list)
    open_now: int = 0
    max_open: int = 0
    max_open_at: float = 0.0

    def opened(self) -> None:
        self.open_now += 1
        if self.open_now > self.max_open:
            self.max_open, self.max_open_at = self.open_now, time.monotonic()


async def one_request(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    stream: bool,
    start: float,
    run: Run,
    limit_s: float,
) -> Sample:
    sample = Sample(start=start)
    opened = False
    try:
        async with asyncio.timeout(limit_s):
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                sample.opened = time.monotonic()
                sample.request_id = response.headers.get("X-Request-Id", "")
                run.opened()
                opened = True
                if response.status != 200:
                    await response.read()
                    sample.error = f"HTTP {response.status}"
                elif stream:
                    await _read_stream(response, sample)
                else:
                    payload = await response.read()
                    sample.ok = bool(payload)
                    sample.first_token = time.monotonic()
    except TimeoutError:
        sample.error = "timeout"
    except (aiohttp.ClientError, OSError) as exc:
        sample.error = type(exc).__name__
        sample.detail = f"{type(exc).__name__}: {exc}"[:200]
        # When it happened, from the request's start: connecting, waiting, or streaming.
        sample.detail += f" ({'after' if opened else 'before'} the response headers, "
        sample.detail += f"{time.monotonic() - start:.1f}s in)"
    finally:
        if opened:
            run.open_now -= 1
        sample.end = time.monotonic()
    return sample


async def _read_stream(response: aiohttp.ClientResponse, sample: Sample) -> None:
    buffer = b""
    done = failed = False
    async for chunk in response.content.iter_any():
        buffer += chunk
        while (cut := buffer.find(b"\n\n")) >= 0:
            frame, buffer = buffer[:cut], buffer[cut + 2 :]
            if frame.startswith(DONE):
                done = True
            elif frame.startswith(b":"):
                sample.pings += 1
            elif frame:
                sample.events += 1
                if DELTA in frame:
                    sample.deltas += 1
                    if sample.first_token is None:
                        sample.first_token = time.monotonic()
                elif frame.startswith(b'data: {"error"') or b'"response.failed"' in frame:
                    failed = True
    sample.ok = done and not failed
    if not sample.ok:
        sample.error = "error frame" if failed else "no [DONE]"


def _session(limit: int, *, new_connections: bool = False) -> aiohttp.ClientSession:
    # One connection per concurrent request; kept alive between the requests of one client
    # unless `new_connections` (then every request connects anew, and each server worker
    # accepts only what it has time for: the split between workers is the servers' own).
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, force_close=new_connections)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))


async def closed_loop(args: argparse.Namespace, body: bytes) -> tuple[Run, float, float]:
    run = Run()
    async with _session(args.concurrency, new_connections=args.new_connections) as session:
        t0 = time.monotonic()
        window_start = t0 + args.warmup
        stop_at = window_start + args.duration

        async def worker() -> None:
            while (now := time.monotonic()) < stop_at:
                sample = await one_request(
                    session,
                    args.url,
                    body,
                    stream=args.stream,
                    start=now,
                    run=run,
                    limit_s=args.timeout,
                )
                run.samples.append(sample)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return run, window_start, stop_at


async def open_loop(args: argparse.Namespace, body: bytes) -> tuple[Run, float, float]:
    run = Run()
    interval = 1.0 / args.rate
    # Past this many requests in flight the server is not keeping up: count the rest as
    # dropped rather than piling up sockets without bound.
    max_in_flight = max(64, int(args.rate * 2))
    in_flight = 0
    tasks: set[asyncio.Task[None]] = set()
    async with _session(max_in_flight) as session:
        t0 = time.monotonic()
        window_start = t0 + args.warmup
        stop_at = window_start + args.duration

        async def fire(scheduled: float) -> None:
            nonlocal in_flight
            in_flight += 1
            try:
                sample = await one_request(
                    session,
                    args.url,
                    body,
                    stream=args.stream,
                    start=scheduled,
                    run=run,
                    limit_s=args.timeout,
                )
                run.samples.append(sample)
            finally:
                in_flight -= 1

        index = 0
        while (scheduled := t0 + index * interval) < stop_at:
            index += 1
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= max_in_flight:
                run.samples.append(Sample(start=scheduled, end=scheduled, error="dropped"))
                continue
            task = asyncio.create_task(fire(scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=args.timeout)
    return run, window_start, stop_at


async def hold(args: argparse.Namespace, body: bytes) -> tuple[Run, float, float]:
    """Open `streams` streams at `ramp_rate` per second; read every one to its end."""
    run = Run()
    async with _session(0) as session:
        t0 = time.monotonic()
        tasks = []
        for index in range(args.streams):
            scheduled = t0 + index / args.ramp_rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(
                    one_request(
                        session,
                        args.url,
                        body,
                        stream=True,
                        start=scheduled,
                        run=run,
                        limit_s=args.timeout,
                    )
                )
            )
        ramp_end = time.monotonic()
        print(orjson.dumps({"progress": "ramped", "t": ramp_end - t0}).decode(), file=sys.stderr)
        run.samples = list(await asyncio.gather(*tasks))
    return run, t0, time.monotonic()


def report(
    args: argparse.Namespace, run: Run, window_start: float, window_end: float, cpu_s: float
) -> dict[str, Any]:
    """Requests that ended inside the measurement window count; the rest were warm-up."""
    everything = run.samples
    inside = [s for s in everything if window_start <= s.end <= window_end]
    if args.mode == "hold":
        inside = everything
    ok = [s for s in inside if s.ok]
    errors = Counter(s.error for s in inside if not s.ok)
    span = window_end - window_start
    expected = args.expect_tokens
    answer_ok = [s for s in ok if not args.stream or expected is None or s.deltas == expected]
    return {
        "mode": args.mode,
        "stream": args.stream,
        "window_s": span,
        "requests": len(ok),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "error_samples": list(dict.fromkeys(s.detail for s in inside if s.detail))[:5],
        "total_ok": sum(1 for s in everything if s.ok),
        "total": len(everything),
        "rps": len(ok) / span if span > 0 else 0.0,
        "latency_ms": summarize([(s.end - s.start) * 1000 for s in ok]),
        "ttft_ms": summarize(
            [(s.first_token - s.start) * 1000 for s in ok if s.first_token is not None]
        ),
        "events_per_s": sum(s.events for s in ok) / span if span > 0 else 0.0,
        "events_per_response": (sum(s.events for s in ok) / len(ok)) if ok else 0.0,
        "deltas_per_response": (sum(s.deltas for s in ok) / len(ok)) if ok else 0.0,
        "pings": sum(s.pings for s in everything),
        "answers_as_expected": len(answer_ok) == len(ok),
        "max_open": run.max_open,
        # Every answered request's id (--ids), warm-up included: the soak checks its traces.
        "answered_ids": [s.request_id for s in everything if s.ok] if args.ids else None,
        "client_cpu_s": cpu_s,
        "client_cpu_share": cpu_s / (window_end - window_start + args.warmup)
        if args.mode != "hold"
        else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=("closed", "open", "hold"), default="closed")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--long", action="store_true", help="ask for the long answer")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=100.0, help="open mode: requests/s")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds not measured")
    parser.add_argument("--streams", type=int, default=1000, help="hold mode: streams")
    parser.add_argument("--ramp-rate", type=float, default=500.0, help="hold: streams/s")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request")
    parser.add_argument("--expect-tokens", type=int, default=None)
    parser.add_argument(
        "--new-connections", action="store_true", help="a new connection for every request"
    )
    parser.add_argument("--ids", action="store_true", help="report answered request ids")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    body = orjson.dumps(request_body(stream=args.stream or args.mode == "hold", long=args.long))
    if args.mode == "hold":
        args.stream = True
    modes = {"closed": closed_loop, "open": open_loop, "hold": hold}
    cpu0 = time.process_time()
    run, window_start, window_end = await modes[args.mode](args, body)
    return report(args, run, window_start, window_end, time.process_time() - cpu0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = _run_fast(_main(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of thousands of sockets


def _run_fast(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """uvloop (from the bench group) makes the client cheaper; the servers choose their own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


if __name__ == "__main__":
    main()
