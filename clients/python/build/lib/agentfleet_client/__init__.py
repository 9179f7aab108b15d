"""Python client for agentfleet: submit tasks, wait for and stream their results (docs/protocol.md)."""

from agentfleet_client.client import (
    PARTITIONER,
    AgentfleetError,
    Client,
    ResultTimeout,
    Task,
    TaskResult,
    TaskStatus,
    new_traceparent,
    output_of,
    to_submission,
)

__all__ = [
    "AgentfleetError",
    "Client",
    "PARTITIONER",
    "ResultTimeout",
    "Task",
    "TaskResult",
    "TaskStatus",
    "new_traceparent",
    "output_of",
    "to_submission",
]
