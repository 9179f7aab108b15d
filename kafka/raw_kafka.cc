#include "kafka/raw_kafka.h"

#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kafka/rdkafka_internal.h"

namespace agentfleet {
namespace {

absl::StatusOr<std::unique_ptr<RdKafka::Producer>> NewRawProducer(const RawKafkaOptions& o) {
  auto props = o.producer;
  props.erase("transactional.id");
  auto conf = MakeConf(props);
  if (!conf.ok()) return conf.status();
  std::string err;
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf->get(), err));
  if (!p) return absl::InternalError("producer: " + err);
  return p;
}

// A consumer assigned (no group join) to every partition of `topic` from its end.
absl::StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> NewTailConsumer(const RawKafkaOptions& o,
                                                                       const std::string& topic,
                                                                       const std::string& group) {
  auto made = NewUnjoinedConsumer(o.consumer, group, "consumer");
  if (!made.ok()) return made.status();
  std::unique_ptr<RdKafka::KafkaConsumer> c = std::move(*made);
  std::string err;
  RdKafka::Metadata* md = nullptr;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(c.get(), topic, nullptr, err));
  if (c->metadata(false, t.get(), &md, 10000) != RdKafka::ERR_NO_ERROR || md->topics()->empty()) {
    delete md;
    return absl::UnavailableError("no metadata for " + topic);
  }
  std::vector<RdKafka::TopicPartition*> parts;
  for (const auto* p : *(*md->topics())[0]->partitions()) {
    parts.push_back(RdKafka::TopicPartition::create(topic, p->id(), RdKafka::Topic::OFFSET_END));
  }
  delete md;
  if (parts.empty()) return absl::UnavailableError(topic + " has no partitions");
  auto code = c->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  if (code != RdKafka::ERR_NO_ERROR) return absl::InternalError("assign: " + RdKafka::err2str(code));
  return c;
}

absl::Status Produce(RdKafka::Producer* p, const std::string& topic, int32_t partition, const std::string& key,
                     const void* value, size_t size) {
  while (true) {
    auto code = p->produce(topic, partition, RdKafka::Producer::RK_MSG_COPY, const_cast<void*>(value), size,
                           key.data(), key.size(), 0, nullptr);
    if (code == RdKafka::ERR_NO_ERROR) return absl::OkStatus();
    if (code != RdKafka::ERR__QUEUE_FULL) return absl::InternalError("produce: " + RdKafka::err2str(code));
    p->poll(1);
  }
}

// The median, nearest rank (the lower middle of an even count).
double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[(values.size() - 1) / 2];
}

}  // namespace

absl::StatusOr<RawKafkaResult> MeasureRawKafka(const RawKafkaOptions& o) {
  // The echo: consumes ping, produces each message to pong (same partition and key).
  auto echo_in = NewTailConsumer(o, o.ping_topic, "agentfleet-bench-raw-echo");
  if (!echo_in.ok()) return echo_in.status();
  auto echo_out = NewRawProducer(o);
  if (!echo_out.ok()) return echo_out.status();
  auto client_out = NewRawProducer(o);
  if (!client_out.ok()) return client_out.status();
  auto client_in = NewTailConsumer(o, o.pong_topic, "agentfleet-bench-raw-client");
  if (!client_in.ok()) return client_in.status();

  std::atomic<bool> stop{false};
  std::atomic<bool> echo_failed{false};
  std::thread echo([&] {
    while (!stop.load()) {
      std::unique_ptr<RdKafka::Message> m((*echo_in)->consume(20));
      (*echo_out)->poll(0);
      if (m->err() == RdKafka::ERR__TIMED_OUT || m->err() == RdKafka::ERR__PARTITION_EOF) continue;
      if (m->err() != RdKafka::ERR_NO_ERROR) continue;
      std::string key = m->key() ? *m->key() : "";
      if (!Produce(echo_out->get(), o.pong_topic, m->partition(), key, m->payload(), m->len()).ok()) {
        echo_failed = true;
      }
    }
    (*echo_out)->flush(5000);
    (*echo_in)->close();
  });
  auto finish = [&](absl::StatusOr<RawKafkaResult> r) {
    stop = true;
    echo.join();
    (*client_out)->flush(5000);
    (*client_in)->close();
    if (r.ok() && echo_failed) return absl::StatusOr<RawKafkaResult>(absl::InternalError("echo could not produce"));
    return r;
  };

  // Waits for the message with `key` on pong; false at `deadline`.
  auto await = [&](const std::string& key, absl::Time deadline) {
    while (absl::Now() < deadline) {
      std::unique_ptr<RdKafka::Message> m((*client_in)->consume(10));
      (*client_out)->poll(0);
      if (m->err() == RdKafka::ERR_NO_ERROR && m->key() && *m->key() == key) return true;
    }
    return false;
  };
  std::string value(o.message_bytes, 'x');
  absl::Time deadline = absl::Now() + o.timeout;

  // Warm up: both consumers have resolved their end offsets and the leaders are known
  // once a message makes it around. Earlier ones may be fetched past, so resend.
  bool warm = false;
  for (int i = 0; !warm && absl::Now() < deadline; ++i) {
    std::string key = absl::StrCat("warm-", i);
    if (absl::Status s = Produce(client_out->get(), o.ping_topic, 0, key, value.data(), value.size()); !s.ok()) {
      return finish(s);
    }
    warm = await(key, std::min(deadline, absl::Now() + absl::Seconds(2)));
  }
  if (!warm) return finish(absl::DeadlineExceededError("raw ping-pong: no echo within the timeout"));

  RawKafkaResult out;
  for (int i = 0; i < o.round_trips; ++i) {
    std::string key = absl::StrCat("ping-", i);
    absl::Time t0 = absl::Now();
    if (absl::Status s = Produce(client_out->get(), o.ping_topic, RdKafka::Topic::PARTITION_UA, key, value.data(),
                                 value.size());
        !s.ok()) {
      return finish(s);
    }
    if (!await(key, deadline)) return finish(absl::DeadlineExceededError(absl::StrCat("raw ping-pong: ", key, " lost")));
    out.round_trip_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }

  // Pipelined: everything produced at once, counted as it comes back. A pass
  // starts once the last one's messages are all back.
  for (int pass = 0; pass < o.pipelined_passes; ++pass) {
    int64_t received = 0;
    auto drain = [&](int timeout_ms) {
      std::unique_ptr<RdKafka::Message> m((*client_in)->consume(timeout_ms));
      if (m->err() == RdKafka::ERR_NO_ERROR) ++received;
    };
    absl::Time start = absl::Now();
    for (int64_t i = 0; i < o.messages; ++i) {
      std::string key = absl::StrCat("pipe-", pass, "-", i);
      if (absl::Status s = Produce(client_out->get(), o.ping_topic, RdKafka::Topic::PARTITION_UA, key, value.data(),
                                   value.size());
          !s.ok()) {
        return finish(s);
      }
      (*client_out)->poll(0);
      if (i % 64 == 0) drain(0);
    }
    while (received < o.messages && absl::Now() < deadline) {
      drain(10);
      (*client_out)->poll(0);
    }
    if (received < o.messages) {
      return finish(absl::DeadlineExceededError(
          absl::StrCat("raw pipelined, pass ", pass + 1, ": ", received, " of ", o.messages, " came back")));
    }
    out.pipelined_per_s.push_back(o.messages / absl::ToDoubleSeconds(absl::Now() - start));
  }
  out.messages = o.messages;
  out.messages_per_s = Median(out.pipelined_per_s);
  return finish(out);
}

}  // namespace agentfleet
