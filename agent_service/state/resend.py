"""What is new in a request that resends the whole conversation.

Chat clients such as the Databricks chatbot send every earlier message again each turn,
with the conversation's id. The agent's thread already holds those messages, so only the
new part is added. The rule, for a thread that already holds messages:

- the new part is everything after the last assistant message of the request (the user's
  new message; or the results of client tool calls that assistant message asked for);
- a request with no assistant message is new as a whole (clients that send only the new
  turn), except that leading system messages the thread already holds are dropped, so a
  client that sends its system prompt every turn does not pile them up.

A thread that holds nothing takes the request whole (a conversation started statelessly
and then given an id keeps its history). Edited history is not detected: the thread keeps
what it was told first.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage


def new_part(held: Sequence[BaseMessage], incoming: Sequence[BaseMessage]) -> list[BaseMessage]:
    if not held:
        return list(incoming)
    last_assistant = max(
        (index for index, message in enumerate(incoming) if isinstance(message, AIMessage)),
        default=None,
    )
    if last_assistant is not None:
        return list(incoming[last_assistant + 1 :])
    known_system = {_text(message) for message in held if isinstance(message, SystemMessage)}
    start = 0
    while (
        start < len(incoming)
        and isinstance(incoming[start], SystemMessage)
        and _text(incoming[start]) in known_system
    ):
        start += 1
    return list(incoming[start:])


def _text(message: BaseMessage) -> str:
    return message.text
