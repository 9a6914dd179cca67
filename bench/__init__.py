"""Side-by-side benchmarks: agent-service against MLflow's AgentServer on the same agent.

`make bench` (or `python -m bench.run`) runs everything; see bench/README.md.
"""
