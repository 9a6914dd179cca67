"""The report: Markdown tables (medians with min-max over rounds, ratios, target verdicts) and
a PNG chart, from the records of one run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenarios import Plan, Record
from bench.stats import Spread

OURS, BASE, BARE = "ours", "baseline", "bare"
# Typographic characters for the Markdown, spelled as escapes to keep the source ASCII.
DASH, TIMES, NONE = "\u2013", "\u00d7", "\u2013"


@dataclass(frozen=True, slots=True)
class Results:
    records: list[Record]
    plan: Plan
    meta: dict[str, Any]
    notes: list[str]

    def values(self, scenario: str, target: str, key: str, sub: str | None = None) -> Spread:
        return Spread.of(
            _pick(record.figures, key, sub)
            for record in self.records
            if record.scenario == scenario and record.target == target
        )

    def has(self, scenario: str) -> bool:
        return any(record.scenario == scenario for record in self.records)

    def single(self, scenario: str, target: str) -> dict[str, Any]:
        for record in self.records:
            if record.scenario == scenario and record.target == target:
                return record.figures
        return {}


def _pick(figures: dict[str, Any], key: str, sub: str | None) -> float | None:
    value = figures.get(key)
    if sub is not None:
        value = value.get(sub) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


# --- derived figures ---------------------------------------------------------------------------


def per_token_us(results: Results, target: str) -> float:
    """Server CPU per streamed token (µs): the slope between the short and the long answer."""
    short = results.values("stream", target, "cpu_per_request_ms").median
    long = results.values("stream-long", target, "cpu_per_request_ms").median
    tokens = results.plan.answer.long_tokens - results.plan.answer.tokens
    return (long - short) / tokens * 1000


def tracing_share(r: Results, scenario: str, target: str, key: str) -> float:
    return r.values(scenario, f"{target}-traced", key).ratio(r.values(scenario, target, key))


def added_latency_ms(results: Results, sub: str) -> float:
    ours = results.values("latency-half-load", OURS, "latency_ms", sub).median
    bare = results.values("latency-half-load", BARE, "latency_ms", sub).median
    return ours - bare


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: not measured

    @property
    def mark(self) -> str:
        return {True: "met", False: "**missed**", None: "not measured"}[self.met]


def verdicts(r: Results) -> list[Verdict]:
    found: list[Verdict] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        found.append(Verdict(target, measured if met is not None else NONE, met))

    def ratio_check(label: str, scenario: str, low: float, against: str) -> None:
        ours = r.values(scenario, OURS, "rps")
        other = r.values(scenario, against, "rps")
        value = ours.ratio(other)
        # CPU per request says the same without depending on how much of the core the
        # server got (another job on the machine takes some of it).
        cpu = r.values(scenario, against, "cpu_per_request_ms").ratio(
            r.values(scenario, OURS, "cpu_per_request_ms")
        )
        measured = (
            f"{value:.2f}{TIMES} ({_n(ours.median)} vs {_n(other.median)} req/s); "
            f"by CPU per request {cpu:.2f}{TIMES}"
        )
        add(label, measured, _ge(value, low))

    ratio_check(f"Non-streaming throughput per worker ≥ 2{TIMES} baseline", "nonstream", 2.0, BASE)
    ratio_check(f"Streaming throughput per worker ≥ 2{TIMES} baseline", "stream", 2.0, BASE)
    ratio_check("Non-streaming throughput ≥ 85% of bare", "nonstream", 0.85, BARE)
    ratio_check("Streaming throughput ≥ 85% of bare", "stream", 0.85, BARE)

    ours_token, bare_token = per_token_us(r, OURS), per_token_us(r, BARE)
    extra = ours_token - bare_token
    add(
        "Per streamed event ≤ 15 µs beyond LangGraph's own cost",
        f"{extra:.1f} µs ({ours_token:.1f} µs of server CPU per token vs {bare_token:.1f} bare)",
        _le(extra, 15.0),
    )
    for sub, limit in (("p50", 1.0), ("p99", 5.0)):
        added = added_latency_ms(r, sub)
        rate = r.values("latency-half-load", OURS, "rate").median
        add(
            f"Added latency {sub} ≤ {limit:g} ms at half of peak load",
            f"{added:+.2f} ms at {_n(rate)} req/s",
            _le(added, limit),
        )
    traces = r.single("traces", "ours-traced")
    stored, answered = traces.get("stored"), traces.get("answered")
    every = stored is not None and bool(answered) and stored >= answered
    for scenario in ("nonstream", "stream"):
        # Sustained throughput is bounded by the CPU each request costs, trace export
        # included; requests/s during a short run is not (the export lags behind it).
        share = tracing_share(r, scenario, OURS, "capacity_rps")
        during = tracing_share(r, scenario, OURS, "rps")
        add(
            f"Tracing on ({scenario}) ≥ 75% of tracing-off throughput, every request traced",
            f"{_pct(share)} sustained (export included), {_pct(during)} during the run; "
            f"{stored} traces stored for {answered} answers",
            None if math.isnan(share) else (share >= 0.75 and every),
        )
    slow = r.values("slow-streams", OURS, "rss_per_stream_kib")
    errors = r.values("slow-streams", OURS, "errors")
    opened = r.values("slow-streams", OURS, "max_open")
    bare = r.values("slow-streams", BARE, "rss_per_stream_kib")
    add(
        f"{r.plan.slow_streams:,} slow streams on one worker: no errors, ≤ 20 KiB RSS each",
        f"{_n(errors.high)} errors, {_n(opened.median)} open at once, "
        f"{slow.median:.1f} KiB per stream (the graph alone: {bare.median:.1f} KiB)",
        None if not slow.ok else (errors.high == 0 and slow.median <= 20.0),
    )
    for scenario, label in (("cold-start-traced", "tracing on"), ("cold-start", "tracing off")):
        boot = r.values(scenario, OURS, "worker_to_answer_s")
        add(
            f"A worker serves its first request ≤ 2.5 s after it starts ({label})",
            f"{boot.median:.2f} s (max {boot.high:.2f} s)",
            _le(boot.median, 2.5) if boot.ok else None,
        )
    return found


def _ge(value: float, low: float) -> bool | None:
    return None if math.isnan(value) else value >= low


def _le(value: float, high: float) -> bool | None:
    return None if math.isnan(value) else value <= high


# --- formatting --------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return NONE
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _pct(value: float) -> str:
    return NONE if math.isnan(value) else f"{value:.0%}"


def cell(spread: Spread, scale: float = 1.0) -> str:
    if not spread.ok:
        return NONE
    median, low, high = (x * scale for x in (spread.median, spread.low, spread.high))
    if spread.n == 1 or low == high:
        return _n(median)
    return f"{_n(median)} ({_n(low)}{DASH}{_n(high)})"


def ratio(a: Spread, b: Spread) -> str:
    value = a.ratio(b)
    return NONE if math.isnan(value) else f"{value:.2f}{TIMES}"


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    key: str
    sub: str | None = None
    scale: float = 1.0
    # False where a ratio means nothing (counts that differ by design).
    ratio: bool = True


def table(
    r: Results,
    scenario: str,
    rows: Iterable[Row],
    columns: list[tuple[str, str]],
    ratios: list[tuple[str, str, str]],
) -> list[str]:
    """columns: (header, target); ratios: (header, numerator target, denominator target)."""
    header = ["", *(name for name, _ in columns), *(name for name, _, _ in ratios)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        spreads = {target: r.values(scenario, target, row.key, row.sub) for _, target in columns}
        cells = [cell(spreads[target], row.scale) for _, target in columns]
        cells += [ratio(spreads[a], spreads[b]) if row.ratio else NONE for _, a, b in ratios]
        lines.append("| " + " | ".join([row.label, *cells]) + " |")
    return lines


THROUGHPUT_ROWS = [
    Row("requests/s", "rps"),
    Row("latency p50 (ms)", "latency_ms", "p50"),
    Row("latency p99 (ms)", "latency_ms", "p99"),
    Row("server CPU per request (ms)", "cpu_per_request_ms"),
    Row("requests per CPU-second", "capacity_rps"),
    Row("RSS per worker (MiB)", "rss_kib", scale=1 / 1024),
]
STREAM_ROWS = [
    *THROUGHPUT_ROWS[:3],
    Row("time to first token p50 (ms)", "ttft_ms", "p50"),
    Row("time to first token p99 (ms)", "ttft_ms", "p99"),
    Row("streamed events/s", "events_per_s"),
    Row("events per response", "events_per_response"),
    *THROUGHPUT_ROWS[3:],
]
VS_ALL = [("ours", OURS), ("baseline", BASE), ("bare", BARE)]
RATIOS_ALL = [("ours/baseline", OURS, BASE), ("ours/bare", OURS, BARE)]


def quality(r: Results) -> list[str]:
    """How clean the measurements were: other work on the server's core, a busy client."""
    foreign = Spread.of(rec.figures.get("foreign_cpu_share") for rec in r.records)
    client = Spread.of(rec.figures.get("client_cpu_share") for rec in r.records)
    if not foreign.ok:
        return []
    text = (
        f"Measurement quality: other processes used {foreign.median:.0%} of the server's core "
        f"during a typical run (max {foreign.high:.0%}; 0% on an otherwise idle machine)"
    )
    if client.ok:
        text += f"; the load generator used at most {client.high:.0%} of its own core"
    text += "."
    if foreign.high > 0.1:
        text += (
            " Runs shared the server's core with other work, which lowers requests/s for "
            "whoever was measured then; interleaving spreads that over all targets, and the "
            "CPU-per-request figures depend on it least."
        )
    return [text]


def markdown(r: Results, chart_name: str | None = "latest.png") -> str:
    plan, meta = r.plan, r.meta
    out: list[str] = [
        f"# agent-service vs MLflow AgentServer — {meta['date']}",
        "",
        f"Command: `{meta['command']}` ({plan.name} plan: {plan.rounds} interleaved rounds of "
        f"{plan.duration_s:g} s per figure after {plan.load_warmup_s:g} s unmeasured, "
        f"{plan.concurrency} concurrent clients, answers of {plan.answer.tokens} and "
        f"{plan.answer.long_tokens} tokens; run time {meta['elapsed_s']:.0f} s).",
        "",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory']}; {meta['os']}. "
        "Server (and bare loop) pinned to core 0, load generator to core 1, loopback only.",
        "",
        "Versions: "
        + ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
        + f"; agent-service at {meta['commit']}.",
        "",
        f"Figures are medians over rounds with the range (min{DASH}max) in parentheses. *ours*: "
        "agent-service (gunicorn, aiohttp worker); *baseline*: MLflow's "
        '`AgentServer("ResponsesAgent")` (FastAPI, uvicorn) wrapping the same graph as the '
        "Databricks LangGraph template; *bare*: the same graph called in a loop in-process.",
        "",
    ]
    if chart_name:
        out += [f"![benchmark chart]({chart_name})", ""]
    out += ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    out += [f"| {v.target} | {v.measured} | {v.mark} |" for v in verdicts(r)]
    out += ["", *quality(r), ""]

    def section(title: str, body: list[str], note: str = "") -> None:
        out.extend([f"## {title}", ""])
        if note:
            out.extend([note, ""])
        out.extend([*body, ""])

    if r.has("nonstream"):
        section(
            "Non-streaming (one worker)",
            table(r, "nonstream", THROUGHPUT_ROWS, VS_ALL, RATIOS_ALL),
            "Closed loop. Ours and bare call `graph.ainvoke`; the baseline's `@invoke` collects "
            "its own stream, as the template's does.",
        )
    if r.has("stream"):
        section(
            f"Streaming, {plan.answer.tokens} tokens (one worker)",
            table(r, "stream", STREAM_ROWS, VS_ALL, RATIOS_ALL),
            "Ours sends OpenAI's full Responses event sequence (created, in_progress, item and "
            "part added, deltas, done events, completed); the baseline sends the deltas and one "
            "`output_item.done`.",
        )
    if r.has("stream-long"):
        rows = [Row("requests/s", "rps"), Row("server CPU per request (ms)", "cpu_per_request_ms")]
        body = table(r, "stream-long", rows, VS_ALL, RATIOS_ALL)
        body += [
            "",
            "| cost per streamed token (µs, slope between the two answer lengths) | ours | "
            "baseline | bare |",
            "|---|---|---|---|",
            f"| server CPU | {per_token_us(r, OURS):.1f} | {per_token_us(r, BASE):.1f} | "
            f"{per_token_us(r, BARE):.1f} |",
        ]
        section(f"Streaming, {plan.answer.long_tokens} tokens (one worker)", body)
    if r.has("latency-half-load"):
        rows = [
            Row("offered load (req/s)", "rate"),
            Row("latency p50 (ms)", "latency_ms", "p50"),
            Row("latency p90 (ms)", "latency_ms", "p90"),
            Row("latency p99 (ms)", "latency_ms", "p99"),
        ]
        body = table(r, "latency-half-load", rows, VS_ALL, [])
        body += [
            "",
            f"Added by our server over bare: p50 {added_latency_ms(r, 'p50'):+.2f} ms, "
            f"p99 {added_latency_ms(r, 'p99'):+.2f} ms.",
        ]
        section(
            "Latency at half of peak load (non-streaming, open loop)",
            body,
            "Requests start on a fixed schedule at half of each server's peak; bare runs at "
            "ours' rate. Latency counts from the scheduled start, so queueing shows.",
        )
    if r.has("nonstream") and any(rec.target == "ours-traced" for rec in r.records):
        rows = [
            Row("non-streaming requests/s during the run", "rps"),
            Row("non-streaming latency p50 (ms)", "latency_ms", "p50"),
            Row("non-streaming latency p99 (ms)", "latency_ms", "p99"),
            Row("server CPU per request, export included (ms)", "cpu_per_request_ms"),
            Row("sustained requests/s (per CPU-second)", "capacity_rps"),
            Row("export still running after the run (s)", "drain_s"),
        ]
        cols = [("ours traced", "ours-traced"), ("baseline traced", "baseline-traced")]
        rats = [
            ("ours/baseline", "ours-traced", "baseline-traced"),
        ]
        body = table(r, "nonstream", rows, cols, rats)
        stream_rows = [
            Row("streaming requests/s during the run", "rps"),
            Row("time to first token p50 (ms)", "ttft_ms", "p50"),
            Row("server CPU per request, export included (ms)", "cpu_per_request_ms"),
            Row("sustained requests/s (per CPU-second)", "capacity_rps"),
            Row("export still running after the run (s)", "drain_s"),
        ]
        body += table(r, "stream", stream_rows, cols, rats)[2:]
        body += [
            "",
            "| share of tracing-off throughput | ours, sustained | ours, during the run "
            "| baseline, sustained | baseline, during the run |",
            "|---|---|---|---|---|",
        ]
        for scenario in ("nonstream", "stream"):
            shares = [
                _pct(tracing_share(r, scenario, t, key))
                for t in (OURS, BASE)
                for key in ("capacity_rps", "rps")
            ]
            body.append(f"| {scenario} | " + " | ".join(shares) + " |")
        traces = [r.single("traces", f"{t}-traced") for t in (OURS, BASE)]
        body += [
            "",
            "Traces in the store after the run: "
            + "; ".join(
                f"{t} {tr.get('stored')} of {tr.get('answered')} answers"
                for t, tr in zip((OURS, BASE), traces, strict=True)
            )
            + ".",
        ]
        section(
            "Tracing on (local SQLite store, every request traced)",
            body,
            "Ours: `AGENT_TRACING=true`, `TRACE_SAMPLING_RATIO=1.0`; baseline: "
            "`mlflow.langchain.autolog()` as in the template. Both export from MLflow's "
            "background threads into their own SQLite file, on the server's core. MLflow "
            "exports after the answer, so a short run ends with a backlog: the harness waits "
            "for it and counts its CPU, and *sustained* is what one core keeps up with.",
        )
    two = [("ours", OURS), ("baseline", BASE)]
    if r.has("nonstream-2w"):
        rows = [
            Row("non-streaming requests/s", "rps"),
            Row("non-streaming latency p99 (ms)", "latency_ms", "p99"),
            Row("non-streaming worker balance (idlest / busiest)", "worker_balance"),
            Row("RSS per worker (MiB)", "rss_kib", scale=1 / 1024),
        ]
        body = table(r, "nonstream-2w", rows, two, [("ours/baseline", OURS, BASE)])
        stream_rows = [
            Row("streaming requests/s", "rps"),
            Row("time to first token p50 (ms)", "ttft_ms", "p50"),
            Row("streamed events/s", "events_per_s"),
            Row("streaming worker balance (idlest / busiest)", "worker_balance"),
        ]
        body += table(r, "stream-2w", stream_rows, two, [("ours/baseline", OURS, BASE)])[2:]
        section(
            "Two workers",
            body,
            "Two workers need both cores, so here the load generator shares them with the "
            f"servers ({plan.concurrency * 2} clients): absolute figures are lower bounds. "
            "Every request opens a new connection: a kept-alive connection stays with the "
            "worker that accepted it, which would leave the split between workers to chance. "
            "*Worker balance* is the idlest worker's CPU over the busiest's (1 = even).",
        )
    if r.has("slow-streams"):
        sa = plan.slow_answer
        rows = [
            Row("streams open at once", "max_open", ratio=False),
            Row("errors", "errors", ratio=False),
            Row("time to first token p50 (s)", "ttft_ms", "p50", 1 / 1000),
            Row("time to first token p99 (s)", "ttft_ms", "p99", 1 / 1000),
            Row("heartbeats received", "pings", ratio=False),
            Row("worker RSS before (MiB)", "rss_before_kib", scale=1 / 1024),
            Row("worker RSS at peak (MiB)", "rss_peak_kib", scale=1 / 1024, ratio=False),
            Row("RSS per open stream (KiB)", "rss_per_stream_kib"),
            Row("server CPU for the whole run (s)", "server_cpu_s"),
        ]
        section(
            f"{plan.slow_streams:,} concurrent slow streams (one worker)",
            table(r, "slow-streams", rows, VS_ALL, RATIOS_ALL),
            f"Each stream: {sa.tokens} tokens {sa.token_delay_ms / 1000:g} s apart; opened at "
            f"{plan.ramp_rate:g}/s. Ours with `SSE_HEARTBEAT_SECONDS={plan.slow_heartbeat_s:g}` "
            "(a ping in every gap; the baseline has no heartbeats). Bare: the graph alone "
            f"running {plan.bare_hold_streams:,} such runs at once (no HTTP).",
        )
    if r.has("cold-start"):
        rows = [
            Row("process start → first answer (s)", "start_to_answer_s"),
            Row("worker start → first answer (s)", "worker_to_answer_s"),
            Row("worker RSS after it (MiB)", "rss_kib", scale=1 / 1024),
        ]
        body = [
            "Tracing off:",
            "",
            *table(r, "cold-start", rows, two, [("ours/baseline", OURS, BASE)]),
        ]
        if r.has("cold-start-traced"):
            body += ["", "Tracing on (trace store already created):", ""]
            body += table(r, "cold-start-traced", rows, two, [("ours/baseline", OURS, BASE)])
        if r.has("cold-start-no-pyc"):
            body += ["", "Tracing off, no bytecode cache (every module compiled at start):", ""]
            body += table(r, "cold-start-no-pyc", rows, two, [("ours/baseline", OURS, BASE)])
        section(
            "Cold start",
            body,
            "From spawning the server to its first successful answer (polled every 10 ms), "
            "with Python's bytecode cache filled by an earlier start, as on any restart. "
            "Ours: gunicorn master, then a forked worker that builds the app (the log line "
            "'Booting worker' marks the fork); the baseline imports the app before binding.",
        )
    if r.notes:
        out += ["## Notes", "", *(f"- {note}" for note in dict.fromkeys(r.notes)), ""]
    return "\n".join(out)


# --- chart -------------------------------------------------------------------------------------


def chart(r: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {OURS: "#1f77b4", BASE: "#ff7f0e", BARE: "#7f7f7f"}
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    fig.suptitle(
        f"agent-service vs MLflow AgentServer ({r.meta['date']}, {r.plan.name} run; "
        f"bars: median, whiskers: min{DASH}max)"
    )

    def bars(
        ax: Any,
        groups: list[tuple[str, str]],
        series: list[tuple[str, str, Callable[[str, str], Spread]]],
        ylabel: str,
        title: str,
        line: float | None = None,
        log: bool = False,
    ) -> None:
        width = 0.8 / max(len(series), 1)
        for index, (label, color, get) in enumerate(series):
            xs, ys, lows, highs = [], [], [], []
            for position, (scenario, _) in enumerate(groups):
                spread = get(scenario, label)
                if not spread.ok:
                    continue
                xs.append(position + (index - (len(series) - 1) / 2) * width)
                ys.append(spread.median)
                lows.append(spread.median - spread.low)
                highs.append(spread.high - spread.median)
            if xs:
                ax.bar(xs, ys, width, label=label, color=color, yerr=[lows, highs], capsize=3)
        ax.set_xticks(range(len(groups)), [name for _, name in groups])
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        if line is not None:
            ax.axhline(line, color="red", linestyle="--", linewidth=1, label="target")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)

    def metric(
        key: str, sub: str | None = None, scale: float = 1.0
    ) -> Callable[[str, str], Spread]:
        def get(scenario: str, target: str) -> Spread:
            s = r.values(scenario, target, key, sub)
            return Spread(s.median * scale, s.low * scale, s.high * scale, s.n)

        return get

    def target_of(target: str, key: str, sub: str | None = None) -> Callable[[str, str], Spread]:
        return lambda scenario, _label: r.values(scenario, target, key, sub)

    series3 = [(t, colors[t], metric("rps")) for t in (OURS, BASE, BARE)]
    bars(
        axes[0][0],
        [("nonstream", "non-streaming"), ("stream", f"stream {r.plan.answer.tokens}"),
         ("stream-long", f"stream {r.plan.answer.long_tokens}")],
        series3,
        "requests/s (log)",
        "Throughput, one worker",
        log=True,
    )  # fmt: skip
    latency = [
        ("ours p50", colors[OURS], target_of(OURS, "latency_ms", "p50")),
        ("baseline p50", colors[BASE], target_of(BASE, "latency_ms", "p50")),
        ("ours p99", "#aec7e8", target_of(OURS, "latency_ms", "p99")),
        ("baseline p99", "#ffbb78", target_of(BASE, "latency_ms", "p99")),
    ]
    bars(
        axes[0][1],
        [("nonstream", "non-stream, peak"), ("stream", "stream, peak"),
         ("latency-half-load", "non-stream, half load")],
        latency,
        "ms",
        "Latency",
    )  # fmt: skip
    tracing = [
        ("ours off", colors[OURS], target_of(OURS, "rps")),
        ("ours on", "#aec7e8", target_of("ours-traced", "rps")),
        ("baseline off", colors[BASE], target_of(BASE, "rps")),
        ("baseline on", "#ffbb78", target_of("baseline-traced", "rps")),
    ]
    bars(
        axes[0][2],
        [("nonstream", "non-streaming"), ("stream", "streaming")],
        tracing,
        "requests/s",
        "Tracing off vs on (every request)",
    )
    bars(
        axes[1][0],
        [("nonstream-2w", "non-streaming"), ("stream-2w", "streaming")],
        [(t, colors[t], metric("rps")) for t in (OURS, BASE)],
        "requests/s",
        "Two workers (cores shared with the client)",
    )
    bars(
        axes[1][1],
        [("slow-streams", f"{r.plan.slow_streams:,} slow streams")],
        [(t, colors[t], metric("rss_per_stream_kib")) for t in (OURS, BASE, BARE)],
        "KiB of RSS per open stream",
        "Memory per open stream",
        line=20.0,
    )
    bars(
        axes[1][2],
        [("cold-start", "tracing off"), ("cold-start-traced", "tracing on")],
        [
            ("ours, worker start", colors[OURS], target_of(OURS, "worker_to_answer_s")),
            ("ours, process start", "#aec7e8", target_of(OURS, "start_to_answer_s")),
            ("baseline (one process)", colors[BASE], target_of(BASE, "start_to_answer_s")),
        ],
        "seconds",
        "Start → first answer",
        line=2.5,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
