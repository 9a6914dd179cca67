"""A small example tool set the agent can call itself, switched on by `AGENT_TOOLS`.

`calculator` evaluates arithmetic by walking the parsed expression (never `eval`), with
bounds that keep a request from asking for a number with a billion digits.
"""

from __future__ import annotations

import ast
import datetime
import math
import operator
import zoneinfo
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, tool

from agent_service.settings import SettingsError

# Bounds on what one expression may cost: its length, and the size of every integer it
# produces (4,000 bits is about 1,200 digits; Python refuses to print past 4,300 digits).
_MAX_EXPRESSION_CHARS = 200
_MAX_INT_BITS = 4000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


class CalculationError(ValueError):
    """The expression is not plain arithmetic, or too costly to compute."""


def calculate(expression: str) -> int | float:
    if len(expression) > _MAX_EXPRESSION_CHARS:
        raise CalculationError(f"expressions are limited to {_MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise CalculationError("not an arithmetic expression") from None
    result: int | float = _evaluate(tree.body)
    return result


def _evaluate(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and _power_too_large(left, right):
            raise CalculationError("the result is too large")
        try:
            return _bounded(_BINARY[type(node.op)](left, right))
        except (ZeroDivisionError, OverflowError, ValueError) as exc:
            raise CalculationError(str(exc)) from None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        arguments = [_evaluate(argument) for argument in node.args]
        try:
            return _bounded(_FUNCTIONS[node.func.id](*arguments))
        except (TypeError, ValueError, OverflowError) as exc:
            raise CalculationError(str(exc)) from None
    raise CalculationError("only numbers, + - * / // % **, parentheses and sqrt/abs/round/min/max")


def _power_too_large(base: Any, exponent: Any) -> bool:
    """Estimated before computing: an integer power has about bits(base) * exponent bits."""
    if not (isinstance(base, int) and isinstance(exponent, int)) or abs(base) <= 1:
        return False
    return abs(base).bit_length() * exponent > _MAX_INT_BITS


def _bounded(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise CalculationError("the result is too large")
    if isinstance(value, complex):
        raise CalculationError("the result is not a real number")
    return value


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as "(2 + 3) * 4 / 7" or "sqrt(2) ** 3"."""
    try:
        return str(calculate(expression))
    except CalculationError as exc:
        return f"error: {exc}"


@tool
def current_time(timezone: str = "UTC") -> str:
    """The current date and time in an IANA time zone such as "Europe/Paris" (default UTC)."""
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"error: unknown time zone {timezone!r}"
    return datetime.datetime.now(zone).isoformat(timespec="seconds")


AVAILABLE_TOOLS: dict[str, BaseTool] = {"calculator": calculator, "current_time": current_time}


def select_tools(names: tuple[str, ...]) -> list[BaseTool]:
    unknown = [name for name in names if name not in AVAILABLE_TOOLS]
    if unknown:
        raise SettingsError(
            f"AGENT_TOOLS: unknown tool(s) {', '.join(unknown)}; "
            f"available: {', '.join(AVAILABLE_TOOLS)}"
        )
    return [AVAILABLE_TOOLS[name] for name in names]
