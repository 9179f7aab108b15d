// The client flow of docs/protocol.md in Java (kafka-clients): submit tasks
// with the documented key, headers and traceparent, then read one result per
// task from the results topic. Run by clients/java/run.sh, which CI runs
// against a real fleet (tests/integration/clients_test.cc).
//
//   java dev.agentfleet.example.SubmitAndWait BOOTSTRAP TOPIC_PREFIX WORKFLOW COUNT
package dev.agentfleet.example;

import agentfleet.v1.Task.TaskResult;
import agentfleet.v1.Task.TaskStatus;
import agentfleet.v1.Task.TaskSubmission;
import com.google.protobuf.Struct;
import com.google.protobuf.util.JsonFormat;
import com.google.protobuf.util.Timestamps;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class SubmitAndWait {
  private static final SecureRandom RANDOM = new SecureRandom();

  static String newTraceparent() {
    byte[] trace = new byte[16];
    byte[] span = new byte[8];
    RANDOM.nextBytes(trace);
    RANDOM.nextBytes(span);
    return "00-" + HexFormat.of().formatHex(trace) + "-" + HexFormat.of().formatHex(span) + "-01";
  }

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0], prefix = args[1], workflow = args[2];
    int count = Integer.parseInt(args[3]);

    // 1. Read results from now on: assign every partition of the results
    //    topic at its current end before submitting anything.
    Properties c = new Properties();
    c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");  // results are written in transactions
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    KafkaConsumer<String, byte[]> results =
        new KafkaConsumer<>(c, new StringDeserializer(), new ByteArrayDeserializer());
    List<TopicPartition> partitions = new ArrayList<>();
    for (PartitionInfo p : results.partitionsFor(prefix + "results")) {
      partitions.add(new TopicPartition(p.topic(), p.partition()));
    }
    results.assign(partitions);
    results.seekToEnd(partitions);
    for (TopicPartition tp : partitions) results.position(tp);  // fixes the end now

    // 2. Submit: key = task id, value = TaskSubmission, the schema headers and
    //    a traceparent. The Java client's default partitioner (murmur2 of the
    //    key) is the one agentfleet expects.
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    Set<String> waiting = new HashSet<>();
    try (KafkaProducer<String, byte[]> producer =
        new KafkaProducer<>(p, new StringSerializer(), new ByteArraySerializer())) {
      for (int i = 0; i < count; i++) {
        String taskId = "java-" + UUID.randomUUID();
        Struct.Builder input = Struct.newBuilder();
        JsonFormat.parser().merge(
            "{\"ticket\": {\"id\": " + i + ", \"subject\": \"Charged twice this month\", \"body\": \"report " + i
                + "\", \"customer\": \"c-" + i + "\"}, \"sources\": [\"billing-kb\", \"docs\"]}",
            input);
        TaskSubmission task = TaskSubmission.newBuilder()
            .setTaskId(taskId)
            .setWorkflow(workflow)
            .setTenant("java")
            .setInput(input)
            .setSubmittedAt(Timestamps.fromMillis(System.currentTimeMillis()))
            .build();
        ProducerRecord<String, byte[]> record =
            new ProducerRecord<>(prefix + "tasks", taskId, task.toByteArray());
        record.headers().add("agentfleet.schema", "agentfleet.v1.TaskSubmission".getBytes(StandardCharsets.UTF_8));
        record.headers().add("agentfleet.schema.version", "1".getBytes(StandardCharsets.UTF_8));
        record.headers().add("traceparent", newTraceparent().getBytes(StandardCharsets.UTF_8));
        producer.send(record).get();  // acknowledged: the task is accepted
        waiting.add(taskId);
      }
    }

    // 3. Wait: one TaskResult per task id (a duplicate is ignored).
    Map<String, TaskStatus> done = new HashMap<>();
    long deadline = System.currentTimeMillis() + 180_000;
    while (!waiting.isEmpty() && System.currentTimeMillis() < deadline) {
      for (ConsumerRecord<String, byte[]> r : results.poll(Duration.ofMillis(200))) {
        if (!waiting.remove(r.key())) continue;
        TaskResult result = TaskResult.parseFrom(r.value());
        done.put(result.getTaskId(), result.getStatus());
      }
    }
    results.close();
    long completed = done.values().stream().filter(s -> s == TaskStatus.TASK_STATUS_COMPLETED).count();
    System.out.println("java client: " + count + " submitted, " + done.size() + " results, " + completed
        + " completed, " + waiting.size() + " missing");
    System.exit(waiting.isEmpty() && completed == count ? 0 : 1);
  }
}
