"""Submit tasks to an agentfleet fleet and read their results, over Kafka.

The wire protocol is docs/protocol.md: a ``TaskSubmission`` keyed by its task
id on ``<prefix>tasks``, with the schema headers and a W3C ``traceparent``;
one ``TaskResult`` per task on ``<prefix>results``, keyed the same way.
"""

from __future__ import annotations

import datetime as _dt
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Set

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from google.protobuf import json_format

from agentfleet.v1 import common_pb2, task_pb2

TaskResult = task_pb2.TaskResult
TaskStatus = task_pb2.TaskStatus

SCHEMA_HEADER = "agentfleet.schema"
SCHEMA_VERSION_HEADER = "agentfleet.schema.version"
TRACEPARENT_HEADER = "traceparent"

# The partitioner every producer of tasks must use: Kafka's Java client's
# default (murmur2 of the key). A resubmission of a task id is recognised by
# the coordinator replica that owns the id's partition, so every producer of
# a given task id must pick the same partition.
PARTITIONER = "murmur2_random"


# Errors a broker gives for a moment after a topic is created or while its
# leaders move (librdkafka does not always mark them retriable here).
_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._WAIT_COORD,
}


class AgentfleetError(Exception):
    """A task could not be submitted, or its result did not arrive in time."""


class ResultTimeout(AgentfleetError):
    """``wait``/``results`` ran out of time; ``missing`` names the task ids without a result."""

    def __init__(self, missing: Iterable[str], timeout: float):
        self.missing = sorted(missing)
        super().__init__(f"no result within {timeout:g} s for {len(self.missing)} task(s): {self.missing[:5]}")


@dataclass
class Task:
    """One task to submit. ``input`` must be JSON-like (dict, list, str, numbers, bool, None)."""

    workflow: str
    input: Mapping[str, Any] = field(default_factory=dict)
    task_id: Optional[str] = None
    tenant: str = ""
    priority: str = "batch"  # "interactive" or "batch"
    deadline: Optional[_dt.datetime] = None
    labels: Mapping[str, str] = field(default_factory=dict)
    max_cost_usd: Optional[float] = None
    max_tokens: Optional[int] = None
    max_steps: Optional[int] = None
    traceparent: Optional[str] = None


def new_traceparent() -> str:
    """A fresh W3C trace context (sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def _timestamp(t: _dt.datetime, out) -> None:
    if t.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    out.FromDatetime(t.astimezone(_dt.timezone.utc).replace(tzinfo=None))


def to_submission(task: Task, now: Optional[_dt.datetime] = None) -> task_pb2.TaskSubmission:
    """The protobuf message for ``task`` (a task id is made up if it has none)."""
    s = task_pb2.TaskSubmission(task_id=task.task_id or str(uuid.uuid4()), tenant=task.tenant, workflow=task.workflow)
    if not s.workflow:
        raise ValueError("a task needs a workflow")
    s.input.update(dict(task.input))
    priorities = {"interactive": common_pb2.PRIORITY_INTERACTIVE, "batch": common_pb2.PRIORITY_BATCH}
    if task.priority not in priorities:
        raise ValueError(f"priority must be one of {sorted(priorities)}, got {task.priority!r}")
    s.priority = priorities[task.priority]
    if task.deadline is not None:
        _timestamp(task.deadline, s.deadline)
    _timestamp(now or _dt.datetime.now(_dt.timezone.utc), s.submitted_at)
    for k, v in task.labels.items():
        s.labels[k] = v
    if task.max_cost_usd is not None:
        s.budget.max_cost_usd = task.max_cost_usd
    if task.max_tokens is not None:
        s.budget.max_tokens = task.max_tokens
    if task.max_steps is not None:
        s.budget.max_steps = task.max_steps
    return s


def output_of(result: TaskResult) -> Any:
    """A result's output as plain Python (dicts, lists, str, float, bool, None)."""
    return json_format.MessageToDict(result)["output"] if result.HasField("output") else None


class Client:
    """A producer of tasks and a reader of results.

    Results are read from the moment the client is created (or from the
    beginning of the topic with ``from_beginning=True``), so submit through
    the client that waits. ``config`` adds librdkafka properties for both
    clients (``security.protocol``, ``sasl.*`` ...).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str = "agentfleet.",
        *,
        config: Optional[Mapping[str, Any]] = None,
        from_beginning: bool = False,
        timeout: float = 30.0,
    ):
        self.tasks_topic = topic_prefix + "tasks"
        self.results_topic = topic_prefix + "results"
        self.signals_topic = topic_prefix + "signals"
        common = {"bootstrap.servers": bootstrap_servers, **dict(config or {})}
        self._producer = Producer(
            {
                **common,
                "enable.idempotence": True,
                "partitioner": PARTITIONER,
                "linger.ms": 2,
            }
        )
        self._consumer = Consumer(
            {
                **common,
                # Assigned, never subscribed: the group id is only a name.
                "group.id": f"agentfleet-client-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self._results: Dict[str, TaskResult] = {}  # arrived, not yet handed out
        self._handed: Set[str] = set()
        self._errors: List[str] = []
        self._assign(from_beginning, timeout)

    def _assign(self, from_beginning: bool, timeout: float) -> None:
        meta = self._consumer.list_topics(self.results_topic, timeout=timeout)
        topic = meta.topics.get(self.results_topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise AgentfleetError(f"topic {self.results_topic} not found: {topic.error if topic else 'no metadata'}")
        partitions = []
        deadline = time.monotonic() + timeout
        for p in sorted(topic.partitions):
            if from_beginning:
                partitions.append(TopicPartition(self.results_topic, p, OFFSET_BEGINNING))
            else:
                # The current end, fixed now: nothing produced after this returns is missed.
                partitions.append(TopicPartition(self.results_topic, p, self._high_watermark(p, deadline)))
        self._consumer.assign(partitions)

    def _high_watermark(self, partition: int, deadline: float) -> int:
        # Right after a topic is created, or while leadership moves, brokers
        # answer "not leader" for a moment: retriable errors are retried
        # until the deadline.
        while True:
            left = deadline - time.monotonic()
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.results_topic, partition), timeout=max(left, 0.1)
                )
                return high
            except KafkaException as e:
                error = e.args[0] if e.args else None
                transient = isinstance(error, KafkaError) and (error.retriable() or error.code() in _TRANSIENT)
                if not transient or left <= 0:
                    raise AgentfleetError(f"cannot read the end of {self.results_topic}[{partition}]: {e}") from e
                time.sleep(min(0.1, max(left, 0)))

    # -- submitting ----------------------------------------------------------

    def submit(self, workflow: str, input: Optional[Mapping[str, Any]] = None, **fields: Any) -> str:
        """Submits one task and waits for Kafka to acknowledge it; returns its id."""
        ids = self.submit_many([Task(workflow=workflow, input=input or {}, **fields)])
        return ids[0]

    def submit_many(self, tasks: Iterable[Task], timeout: float = 30.0) -> List[str]:
        """Submits tasks (pipelined) and waits until Kafka acknowledged every one; returns their ids in order."""
        ids: List[str] = []
        failures: List[str] = []

        def delivered(err, msg):
            if err is not None:
                failures.append(f"{msg.key().decode()}: {err}")

        for task in tasks:
            s = to_submission(task)
            headers = [
                (SCHEMA_HEADER, b"agentfleet.v1.TaskSubmission"),
                (SCHEMA_VERSION_HEADER, b"1"),
                (TRACEPARENT_HEADER, (task.traceparent or new_traceparent()).encode()),
            ]
            while True:
                try:
                    self._producer.produce(
                        self.tasks_topic, key=s.task_id.encode(), value=s.SerializeToString(), headers=headers,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self._producer.poll(0.1)
            ids.append(s.task_id)
            self._producer.poll(0)
        remaining = self._producer.flush(timeout)
        if remaining:
            raise AgentfleetError(f"{remaining} task(s) not acknowledged by Kafka within {timeout:g} s")
        if failures:
            raise AgentfleetError(f"{len(failures)} task(s) not submitted: {failures[:5]}")
        return ids

    # -- signals and cancellation --------------------------------------------

    def signal(self, task_id: str, name: str, payload: Any = None, sender: str = "", timeout: float = 30.0) -> None:
        """Sends the signal ``name`` (a JSON ``payload``) to a task: its workflow's wait step for that name takes it."""
        s = task_pb2.TaskSignal(task_id=task_id, name=name, sender=sender)
        if payload is not None:
            json_format.ParseDict(payload, s.payload)
        self._send_signal(s, timeout)

    def cancel(self, task_id: str, reason: str = "", sender: str = "", timeout: float = 30.0) -> None:
        """Cancels a task: it ends CANCELLED with its best output so far (its result arrives like any other).

        A cancellation read before the task's submission is kept, so the task ends CANCELLED when it comes.
        """
        self._send_signal(task_pb2.TaskSignal(task_id=task_id, cancel=True, reason=reason, sender=sender), timeout)

    def _send_signal(self, s: "task_pb2.TaskSignal", timeout: float) -> None:
        s.sent_at.GetCurrentTime()
        failures: List[str] = []

        def delivered(err, msg):
            if err is not None:
                failures.append(str(err))

        headers = [
            (SCHEMA_HEADER, b"agentfleet.v1.TaskSignal"),
            (SCHEMA_VERSION_HEADER, b"1"),
            (TRACEPARENT_HEADER, new_traceparent().encode()),
        ]
        # The same partitioner as the tasks: the signal reaches the replica that owns its task.
        self._producer.produce(
            self.signals_topic, key=s.task_id.encode(), value=s.SerializeToString(), headers=headers,
            on_delivery=delivered,
        )
        if self._producer.flush(timeout):
            raise AgentfleetError(f"the signal for {s.task_id} was not acknowledged by Kafka within {timeout:g} s")
        if failures:
            raise AgentfleetError(f"the signal for {s.task_id} was not sent: {failures[0]}")

    # -- results -------------------------------------------------------------

    def _poll(self, timeout: float) -> None:
        for msg in self._consumer.consume(num_messages=500, timeout=timeout):
            if msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    self._errors.append(str(msg.error()))
                continue
            result = TaskResult()
            try:
                result.ParseFromString(msg.value() or b"")
            except Exception as e:  # noqa: BLE001 - a bad record must not stop the reader
                self._errors.append(f"undecodable result at {msg.partition()}@{msg.offset()}: {e}")
                continue
            if result.task_id in self._handed or result.task_id in self._results:
                continue  # results are delivered at most once per task id
            self._results[result.task_id] = result

    def results(self, task_ids: Optional[Iterable[str]] = None, timeout: Optional[float] = None) -> Iterator[TaskResult]:
        """Yields results as they arrive: of ``task_ids`` until each has one, or of any task until ``timeout``.

        With ``task_ids`` and a ``timeout``, raises ResultTimeout naming the ones still missing.
        """
        wanted = None if task_ids is None else set(task_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        while wanted is None or wanted:
            ready = list(self._results) if wanted is None else [t for t in wanted if t in self._results]
            for task_id in ready:
                result = self._results.pop(task_id)
                self._handed.add(task_id)
                if wanted is not None:
                    wanted.discard(task_id)
                yield result
            if wanted is not None and not wanted:
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                if wanted is None:
                    return
                raise ResultTimeout(wanted, timeout or 0)
            self._poll(0.2 if left is None else max(0.0, min(0.2, left)))

    def wait(self, task_id: str, timeout: float = 60.0) -> TaskResult:
        """The result of one task; raises ResultTimeout if none arrives within ``timeout`` seconds."""
        for result in self.results([task_id], timeout=timeout):
            return result
        raise ResultTimeout([task_id], timeout)

    def run(self, workflow: str, input: Optional[Mapping[str, Any]] = None, timeout: float = 60.0, **fields: Any) -> TaskResult:
        """Submits one task and waits for its result."""
        return self.wait(self.submit(workflow, input, **fields), timeout)

    @property
    def errors(self) -> List[str]:
        """Read errors so far (undecodable records, consumer errors); reading goes on past them."""
        return list(self._errors)

    def close(self) -> None:
        self._producer.flush(10)
        self._consumer.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

