"""Writes N tasks' submissions and results to a fleet's topics, as a large
fleet's history, for bench/console.sh (Debian's python3 with
python3-confluent-kafka and python3-protobuf; the generated classes of
clients/python).

  /usr/bin/python3 bench/console_load.py BOOTSTRAP TOPIC_PREFIX N
"""
import sys
import time

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0] + "/clients/python")
from confluent_kafka import Producer  # noqa: E402
from agentfleet.v1 import task_pb2, common_pb2  # noqa: E402

bootstrap, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10000,
                     "queue.buffering.max.messages": 1000000, "partitioner": "murmur2_random",
                     "compression.type": "lz4"})
statuses = [task_pb2.TASK_STATUS_COMPLETED] * 8 + [task_pb2.TASK_STATUS_PARTIAL, task_pb2.TASK_STATUS_FAILED]
now = time.time()
for i in range(n):
    task_id = f"load-{i:07d}"
    tenant = f"tenant-{i % 20}"
    at = now - (n - i) * 0.01
    s = task_pb2.TaskSubmission(task_id=task_id, tenant=tenant, workflow="support")
    s.submitted_at.FromNanoseconds(int(at * 1e9))
    s.input.update({"ticket": {"subject": f"Ticket {i}", "body": "x" * 200}})
    r = task_pb2.TaskResult(task_id=task_id, tenant=tenant, workflow="support", status=statuses[i % 10])
    r.submitted_at.FromNanoseconds(int(at * 1e9))
    r.accepted_at.FromNanoseconds(int((at + 0.002) * 1e9))
    r.finished_at.FromNanoseconds(int((at + 0.9) * 1e9))
    r.usage.CopyFrom(common_pb2.Usage(input_tokens=180, output_tokens=130, cost_usd=0.0009, calls=5))
    for step in ("classify", "research", "respond", "review"):
        r.steps.add(step=step, agent=step, model="sim-small", status=task_pb2.STEP_STATUS_SUCCEEDED, attempts=1)
    r.output.struct_value.update({"answer": "y" * 100})
    for topic, message in ((prefix + "tasks", s), (prefix + "results", r)):
        while True:
            try:
                producer.produce(topic, key=task_id, value=message.SerializeToString(),
                                 headers=[("agentfleet.schema", message.DESCRIPTOR.full_name),
                                          ("agentfleet.schema.version", "1")])
                break
            except BufferError:
                producer.poll(0.1)
    if i % 10000 == 0:
        producer.poll(0)
producer.flush(120)
print(f"console_load: {n} submissions and {n} results written")
