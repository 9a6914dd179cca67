"""The export process: reads finished traces from the spool and writes them to the MLflow
destination in batches, off the serving workers (`python -m agent_service.observability.export`)."""
