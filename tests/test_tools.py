"""The example tools, and switching them on through settings."""

from __future__ import annotations

import datetime
from pathlib import Path

import orjson
import pytest

from agent_service.agents.tools import (
    CalculationError,
    calculate,
    calculator,
    current_time,
    select_tools,
)
from agent_service.settings import Settings, SettingsError
from tests.conftest import ServiceFactory


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("(2 + 3) * 4", 20),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-2 ** 2", -4),
        ("2 ** -1", 0.5),
        ("sqrt(16)", 4.0),
        ("max(1, 5, 3)", 5),
        ("round(pi, 2)", 3.14),
        ("10 % 4", 2),
    ],
)
def test_calculator_arithmetic(expression: str, value: float) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("__import__('os').system('true')", "only numbers"),
        ("open('/etc/passwd')", "only numbers"),
        ("(1).__class__", "only numbers"),
        ("9 ** 9 ** 9", "too large"),
        ("((9 ** 100) ** 100) ** 100", "too large"),
        ("1 / 0", "division by zero"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 +", "not an arithmetic expression"),
        ("1" * 201, "limited to 200 characters"),
    ],
)
def test_calculator_refuses_what_is_not_cheap_arithmetic(expression: str, problem: str) -> None:
    with pytest.raises(CalculationError, match=problem):
        calculate(expression)


def test_tools_report_errors_as_results_for_the_model() -> None:
    assert calculator.invoke({"expression": "1/0"}) == "error: division by zero"
    assert (
        current_time.invoke({"timezone": "Mars/Olympus"})
        == "error: unknown time zone 'Mars/Olympus'"
    )
    now = datetime.datetime.fromisoformat(current_time.invoke({"timezone": "Asia/Tokyo"}))
    assert now.utcoffset() == datetime.timedelta(hours=9)


def test_agent_tools_setting() -> None:
    settings = Settings.from_env({"AGENT_TOOLS": " calculator, current_time,calculator "})
    assert settings.agent_tools == ("calculator", "current_time")
    assert [tool.name for tool in select_tools(settings.agent_tools)] == [
        "calculator",
        "current_time",
    ]
    with pytest.raises(SettingsError, match="AGENT_TOOLS: unknown tool"):
        select_tools(("web_search",))


async def test_scripted_offline_model_runs_the_agents_tools(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_bytes(
        orjson.dumps(
            [{"tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]}, {}]
        )
    )
    client = await make_service(
        {"AGENT_TASK": "agent/v2/chat", "AGENT_TOOLS": "calculator", "OFFLINE_SCRIPT": str(script)}
    )
    answer = await (
        await client.post("/invocations", json={"messages": [{"role": "user", "content": "6*7?"}]})
    ).json()
    call, result, final = answer["messages"]
    assert call["tool_calls"][0]["function"]["name"] == "calculator"
    assert result["content"] == "42"
    assert "Tool results: calculator → 42." in final["content"]
    info = await (await client.get("/agent/info")).json()
    assert str(script) in info["model"]["endpoint"]
