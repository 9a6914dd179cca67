"""Conversation state: stored responses, conversations and the agent's memory (LangGraph
checkpointers), in SQLite by default or PostgreSQL (Lakebase on Databricks) to scale out.

Nothing here imports aiohttp: the HTTP layer passes plain values (the caller's owner id,
the request's ids) and gets plain records back.
"""
