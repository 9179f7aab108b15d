#!/usr/bin/env python3
"""Submits tasks framed by Confluent's ProtobufSerializer (Schema Registry wire format) and waits for their results.

  produce_framed.py BOOTSTRAP TOPIC_PREFIX REGISTRY_URL WORKFLOW COUNT
Prints "framed: N submitted, N results, N completed" and exits 0 when every task completed.
Needs clients/python on PYTHONPATH (the result reader and the generated classes).
"""

import sys
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from agentfleet.v1 import task_pb2
from agentfleet_client import PARTITIONER, Client, Task, TaskStatus, new_traceparent, to_submission


def main():
    bootstrap, prefix, registry_url, workflow, count = sys.argv[1:6]
    count = int(count)
    topic = prefix + "tasks"
    serializer = ProtobufSerializer(task_pb2.TaskSubmission, SchemaRegistryClient({"url": registry_url}))
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": PARTITIONER, "enable.idempotence": True})
    with Client(bootstrap, prefix) as results:  # reads results from now on
        ids = []
        for i in range(count):
            task = Task(workflow, {"ticket": {"id": i, "subject": "Charged twice", "body": f"framed {i}"},
                                   "sources": ["docs"]}, task_id=f"framed-{uuid.uuid4()}")
            value = serializer(to_submission(task), SerializationContext(topic, MessageField.VALUE))
            assert value[0] == 0, "not framed"
            # No agentfleet.schema headers: a Confluent producer sets none.
            producer.produce(topic, key=task.task_id.encode(), value=value,
                             headers=[("traceparent", new_traceparent().encode())])
            ids.append(task.task_id)
        assert producer.flush(30) == 0
        got = list(results.results(ids, timeout=180))
    completed = sum(1 for r in got if r.status == TaskStatus.Value("TASK_STATUS_COMPLETED"))
    print(f"framed: {count} submitted, {len(got)} results, {completed} completed")
    return 0 if completed == count else 1


if __name__ == "__main__":
    sys.exit(main())
