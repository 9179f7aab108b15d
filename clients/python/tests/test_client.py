"""The Python client against a real fleet (real Kafka, a coordinator and workers with simulated agents).

Started by tests/integration/clients_test.cc, which passes the fleet through the environment:
AGENTFLEET_BOOTSTRAP, AGENTFLEET_TOPIC_PREFIX, AGENTFLEET_WORKFLOW.
"""

import os
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from agentfleet.v1 import task_pb2
from agentfleet_client import PARTITIONER, Client, ResultTimeout, Task, TaskStatus, output_of

BOOTSTRAP = os.environ.get("AGENTFLEET_BOOTSTRAP", "")
PREFIX = os.environ.get("AGENTFLEET_TOPIC_PREFIX", "agentfleet.")
WORKFLOW = os.environ.get("AGENTFLEET_WORKFLOW", "support")

pytestmark = pytest.mark.skipif(not BOOTSTRAP, reason="needs a running fleet (AGENTFLEET_BOOTSTRAP)")


def ticket(i: int) -> dict:
    return {
        "ticket": {"id": i, "subject": "Charged twice this month", "body": f"report {i}", "customer": f"c-{i}"},
        "sources": ["billing-kb", "docs"],
    }


@pytest.fixture(scope="module")
def client():
    with Client(BOOTSTRAP, PREFIX) as c:
        yield c


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's default partitioner), as a positive 31-bit int."""
    m, r, seed = 0x5BD1E995, 24, 0x9747B28C
    length = len(data)
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = data[length - rest :]
    if rest == 3:
        h ^= tail[2] << 16
    if rest >= 2:
        h ^= tail[1] << 8
    if rest >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h & 0x7FFFFFFF


def find_record(topic: str, key: str):
    """The last record under ``key`` on ``topic`` (read from the beginning, for up to 100 s), and the topic's partitions."""
    reader = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"py-reader-{uuid.uuid4()}", "enable.auto.commit": False})
    partitions = sorted(reader.list_topics(topic, timeout=30).topics[topic].partitions)
    reader.assign([TopicPartition(topic, p, 0) for p in partitions])
    found = None
    for _ in range(200):
        for msg in reader.consume(500, timeout=0.5):
            if msg.error() is None and msg.key() == key.encode():
                found = msg
        if found:
            break
    reader.close()
    return found, partitions


def test_run_submits_one_task_and_returns_its_completed_result(client):
    result = client.run(WORKFLOW, ticket(1), tenant="acme", labels={"source": "pytest"}, timeout=120)
    assert result.status == TaskStatus.Value("TASK_STATUS_COMPLETED"), result
    assert result.tenant == "acme"
    assert result.labels["source"] == "pytest"
    assert [s.step for s in result.steps][0] == "classify"
    assert result.usage.calls >= 4
    assert isinstance(output_of(result), dict) and output_of(result)


def test_submit_many_then_stream_yields_every_result_once(client):
    tasks = [Task(workflow=WORKFLOW, input=ticket(i), task_id=f"py-{uuid.uuid4()}") for i in range(200)]
    ids = client.submit_many(tasks)
    assert ids == [t.task_id for t in tasks]
    seen = [r.task_id for r in client.results(ids, timeout=180)]
    assert sorted(seen) == sorted(ids)
    assert len(set(seen)) == len(seen)


def test_a_resubmitted_task_id_gets_one_result(client):
    task_id = f"py-again-{uuid.uuid4()}"
    client.submit(WORKFLOW, ticket(7), task_id=task_id)
    first = client.wait(task_id, timeout=120)
    client.submit(WORKFLOW, ticket(7), task_id=task_id)
    with pytest.raises(ResultTimeout):
        client.wait(task_id, timeout=5)  # the coordinator recognised the id: no second result
    assert first.status == TaskStatus.Value("TASK_STATUS_COMPLETED")


def test_an_unknown_workflow_is_rejected_with_a_reason(client):
    result = client.run("no-such-workflow", {"x": 1}, timeout=60)
    assert result.status == TaskStatus.Value("TASK_STATUS_REJECTED")
    assert result.error.code and "no-such-workflow" in result.error.message


def test_waiting_for_a_task_never_submitted_times_out_naming_it(client):
    with pytest.raises(ResultTimeout) as e:
        client.wait("never-submitted", timeout=1)
    assert e.value.missing == ["never-submitted"]


def test_the_record_carries_the_documented_key_headers_and_partition(client):
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    task_id = f"py-wire-{uuid.uuid4()}"
    client.submit(WORKFLOW, ticket(3), task_id=task_id, traceparent=traceparent)
    assert PARTITIONER == "murmur2_random"
    found, partitions = find_record(PREFIX + "tasks", task_id)
    assert found is not None, "the submission is not on the tasks topic"
    headers = dict(found.headers())
    assert headers["agentfleet.schema"] == b"agentfleet.v1.TaskSubmission"
    assert headers["agentfleet.schema.version"] == b"1"
    assert headers["traceparent"] == traceparent.encode()
    assert found.partition() == murmur2(task_id.encode()) % len(partitions)
    submission = task_pb2.TaskSubmission.FromString(found.value())
    assert submission.task_id == task_id and submission.workflow == WORKFLOW
    assert submission.HasField("submitted_at")


def test_a_client_made_right_after_its_results_topic_is_created_starts(client):
    # Brokers answer "not leader" for a moment after a topic is created; the
    # client must wait that out (bounded by its timeout), not fail.
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = f"{PREFIX}fresh-{uuid.uuid4().hex[:8]}."
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for future in admin.create_topics([NewTopic(prefix + "results", num_partitions=8, replication_factor=1)]).values():
        future.result(timeout=30)
    with Client(BOOTSTRAP, prefix, timeout=30) as fresh:
        assert list(fresh.results(timeout=0.5)) == []


def test_a_task_cancelled_before_it_was_submitted_ends_cancelled_with_the_reason(client):
    # The cancellation is on the signals topic before the task is on the tasks
    # topic: whichever the coordinator reads first, the task ends CANCELLED.
    task_id = f"py-cancel-{uuid.uuid4()}"
    client.cancel(task_id, reason="the customer withdrew it", sender="pytest")
    client.submit(WORKFLOW, ticket(4), task_id=task_id)
    result = client.wait(task_id, timeout=60)
    assert result.status == TaskStatus.Value("TASK_STATUS_CANCELLED")
    assert result.error.code == "cancelled"
    assert result.error.message == "the customer withdrew it"


def test_a_signal_is_a_task_signal_keyed_and_partitioned_like_its_task(client):
    task_id = f"py-signal-{uuid.uuid4()}"
    client.signal(task_id, "approve", {"ok": True, "note": "fine"}, sender="alice")
    found, partitions = find_record(PREFIX + "signals", task_id)
    assert found is not None, "the signal is not on the signals topic"
    assert dict(found.headers())["agentfleet.schema"] == b"agentfleet.v1.TaskSignal"
    assert found.partition() == murmur2(task_id.encode()) % len(partitions)
    signal = task_pb2.TaskSignal.FromString(found.value())
    assert (signal.task_id, signal.name, signal.sender, signal.cancel) == (task_id, "approve", "alice", False)
    assert signal.payload.struct_value.fields["ok"].bool_value is True
