"""The fixed task both servers (and the bare loop) run: the same graph, the same answer.

The offline model is scripted with two turns. The reply to a request is chosen by how many
assistant messages follow the last user message, so one server process serves a short answer
(one user message) and a long one (the same input followed by an assistant message):
two answer lengths give the cost per streamed token as a slope, without a second server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agent_service.models.offline import OfflineChatModel, ScriptedTurn

# A list of items, not a bare string: MLflow's ResponsesAgentRequest accepts only a list.
SHORT_INPUT: list[dict[str, str]] = [{"role": "user", "content": "hello"}]
LONG_INPUT: list[dict[str, str]] = [
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "ok"},
]

# Environment of the baseline server (ours reads OFFLINE_SCRIPT / OFFLINE_TOKEN_DELAY_MS).
ENV_TOKENS = "BENCH_TOKENS"
ENV_LONG_TOKENS = "BENCH_LONG_TOKENS"
ENV_DELAY_MS = "BENCH_TOKEN_DELAY_MS"


@dataclass(frozen=True, slots=True)
class Answer:
    """The scripted answer: `tokens` for the short turn, `long_tokens` for the long one."""

    tokens: int = 64
    long_tokens: int = 256
    token_delay_ms: float = 0.0

    def turns(self) -> list[dict[str, str]]:
        return [{"text": _text(self.tokens)}, {"text": _text(self.long_tokens)}]

    def model(self) -> OfflineChatModel:
        script = tuple(ScriptedTurn.from_json(turn) for turn in self.turns())
        return OfflineChatModel(script=script, token_delay_s=self.token_delay_ms / 1000)

    def write_script(self, path: Path) -> Path:
        path.write_bytes(orjson.dumps(self.turns()))
        return path

    def env(self) -> dict[str, str]:
        return {
            ENV_TOKENS: str(self.tokens),
            ENV_LONG_TOKENS: str(self.long_tokens),
            ENV_DELAY_MS: str(self.token_delay_ms),
        }

    @classmethod
    def from_env(cls) -> Answer:
        return cls(
            tokens=int(os.environ.get(ENV_TOKENS, "64")),
            long_tokens=int(os.environ.get(ENV_LONG_TOKENS, "256")),
            token_delay_ms=float(os.environ.get(ENV_DELAY_MS, "0")),
        )

    def tokens_for(self, long: bool) -> int:
        return self.long_tokens if long else self.tokens


def request_body(*, stream: bool, long: bool = False) -> dict[str, Any]:
    """The request both servers get on POST /invocations (Responses input)."""
    return {"input": LONG_INPUT if long else SHORT_INPUT, "stream": stream}


def _text(tokens: int) -> str:
    # The offline model splits on whitespace: "tok tok tok" is three tokens.
    return " ".join(["tok"] * tokens)
