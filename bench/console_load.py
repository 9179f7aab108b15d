"""Writes N tasks' submissions and results to a fleet's topics, as a large
fleet's history, for bench/console.sh: also each task's state snapshot (the
newest 1 % still running, half of those with a step waiting for the
sim-small quota) and 1,000 dead letters (Debian's python3 with
python3-confluent-kafka and python3-protobuf; the generated classes of
clients/python).

  /usr/bin/python3 bench/console_load.py BOOTSTRAP TOPIC_PREFIX N
"""
import sys
import time

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0] + "/clients/python")
from confluent_kafka import Producer  # noqa: E402
from agentfleet.v1 import task_pb2, common_pb2, state_pb2  # noqa: E402

bootstrap, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10000,
                     "queue.buffering.max.messages": 1000000, "partitioner": "murmur2_random",
                     "compression.type": "lz4"})
statuses = [task_pb2.TASK_STATUS_COMPLETED] * 8 + [task_pb2.TASK_STATUS_PARTIAL, task_pb2.TASK_STATUS_FAILED]
now = time.time()


def send(topic, key, value, headers):
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=headers)
            return
        except BufferError:
            producer.poll(0.1)


def schema(message):
    return [("agentfleet.schema", message.DESCRIPTOR.full_name), ("agentfleet.schema.version", "1")]


running = max(1, n // 100)
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
    state = state_pb2.TaskState()
    if i < n - running:
        state.finished = True  # a finished task's compact snapshot
        state.status = r.status
        state.submission.task_id = task_id
        state.finished_at.CopyFrom(r.finished_at)
        send(prefix + "results", task_id, r.SerializeToString(), schema(r))
    else:
        state.submission.CopyFrom(s)
        state.accepted_at.CopyFrom(r.accepted_at)
        state.steps.add(step="classify", status=task_pb2.STEP_STATUS_SUCCEEDED, attempt=1)
        waiting = state.steps.add(step="research", attempt=1)
        if i % 2 == 0:
            waiting.rate_wait = True
            waiting.rate_key = "sim/sim-small"
    send(prefix + "tasks", task_id, s.SerializeToString(), schema(s))
    send(prefix + "state", task_id, state.SerializeToString(), schema(state))
    if i % 10000 == 0:
        producer.poll(0)
for i in range(1000):
    send(prefix + "dlq", f"dead-{i}", b"\x08\xff not protobuf " + b"z" * 200,
         [("agentfleet.dlq.reason", "payload is not a valid agentfleet.v1.TaskSubmission (bench)"),
          ("agentfleet.dlq.component", "coordinator"), ("agentfleet.dlq.topic", prefix + "tasks"),
          ("agentfleet.dlq.partition", "0"), ("agentfleet.dlq.offset", str(i))])
producer.flush(120)
print(f"console_load: {n} submissions, {n - running} results, {n} state snapshots ({running} running, "
      f"{(running + 1) // 2} waiting for a quota) and 1,000 dead letters written")
