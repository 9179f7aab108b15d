// Producer, Consumer and admin helpers over librdkafka's C++ API (and its C
// admin API where the C++ one has none).
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <algorithm>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "kafka/kafka.h"
#include "kafka/key_scan.h"
#include "kafka/rdkafka_internal.h"

namespace agentfleet {
namespace {

constexpr char kComponent[] = "kafka";

int Ms(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

// One end of a partition's log, asked of its leader within `timeout_ms`:
// `logical` is Topic::OFFSET_BEGINNING (the low watermark) or OFFSET_END (the
// high one; the last stable offset for a read_committed handle).
// Not query_watermark_offsets(): librdkafka 2.0.2 waits for its two answers
// without looking at its timeout, and a request to a leader that died and
// was never sent is retried on that node, without counting, until it comes
// back. The coordinator's main thread waited there for minutes when a node
// of a three-node cluster was SIGKILLed (the chaos test's fail-over; unit
// tests LeaderDownTest.*). offsets_for_times() sends the same ListOffsets
// request and stops waiting at its timeout.
RdKafka::ErrorCode ListOffset(RdKafka::Handle* handle, const std::string& topic, int32_t partition,
                              int64_t logical, int timeout_ms, int64_t* offset) {
  std::vector<RdKafka::TopicPartition*> tps = {RdKafka::TopicPartition::create(topic, partition, logical)};
  RdKafka::ErrorCode code = handle->offsetsForTimes(tps, timeout_ms);
  if (code == RdKafka::ERR_NO_ERROR) code = tps[0]->err();
  if (code == RdKafka::ERR_NO_ERROR) *offset = tps[0]->offset();
  RdKafka::TopicPartition::destroy(tps);
  return code;
}

// librdkafka's log lines and errors become our structured logs.
class LogBridge : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR:
        Log(event.fatal() ? LogLevel::kError : LogLevel::kWarning, kComponent, event.str(),
            {{"error", RdKafka::err2str(event.err())}});
        break;
      case RdKafka::Event::EVENT_LOG:
        Log(event.severity() <= RdKafka::Event::EVENT_SEVERITY_ERROR ? LogLevel::kWarning
                                                                    : LogLevel::kDebug,
            kComponent, event.str(), {{"facility", event.fac()}});
        break;
      default:
        break;
    }
  }
};

LogBridge* SharedLogBridge() {
  static LogBridge* bridge = new LogBridge();
  return bridge;
}

absl::Status FromErr(RdKafka::ErrorCode code, absl::string_view what) {
  if (code == RdKafka::ERR_NO_ERROR) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", RdKafka::err2str(code));
  switch (code) {
    case RdKafka::ERR__TIMED_OUT:
    case RdKafka::ERR_REQUEST_TIMED_OUT:
      return absl::DeadlineExceededError(msg);
    case RdKafka::ERR__QUEUE_FULL:
    case RdKafka::ERR__TRANSPORT:
    case RdKafka::ERR__ALL_BROKERS_DOWN:
    case RdKafka::ERR_NOT_LEADER_FOR_PARTITION:
      return absl::UnavailableError(msg);
    case RdKafka::ERR__STATE:
    case RdKafka::ERR__UNKNOWN_PARTITION:
    case RdKafka::ERR__FENCED:  // a newer producer with this transactional.id took over
    case RdKafka::ERR__FATAL:   // the producer cannot be used any more (fenced, for a transactional one)
    case RdKafka::ERR_PRODUCER_FENCED:
    case RdKafka::ERR_INVALID_PRODUCER_EPOCH:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// Transactional API errors: fatal (fenced) -> FailedPrecondition, "abort the
// transaction" -> Aborted, retriable -> Unavailable.
absl::Status FromTxnError(RdKafka::Error* error, absl::string_view what) {
  if (error == nullptr) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", error->str());
  absl::Status status = error->is_fatal()             ? absl::FailedPreconditionError(msg)
                        : error->txn_requires_abort() ? absl::AbortedError(msg)
                        : error->is_retriable()       ? absl::UnavailableError(msg)
                                                      : absl::InternalError(msg);
  delete error;
  return status;
}

std::vector<RdKafka::TopicPartition*> ToRd(const std::vector<TopicPartition>& tps);

// Delivery reports, as the producer's poller thread takes them from
// librdkafka's event queue: failures logged and counted, each message's
// callback (its opaque) run once.
class DeliveryBridge {
 public:
  ~DeliveryBridge() {
    absl::MutexLock lock(&mu_);
    Summarize(absl::InfiniteFuture());
  }

  void Deliver(const rd_kafka_message_t& message) {
    auto* cb = static_cast<DeliveryCallback*>(message._private);
    const auto code = static_cast<RdKafka::ErrorCode>(message.err);
    if (code != RdKafka::ERR_NO_ERROR) {
      // An aborted transaction purges every queued message at once (1,655
      // lines in a second were seen): the first failure is logged, then one
      // summary a second with the count, so the line that matters stays
      // visible.
      absl::MutexLock lock(&mu_);
      ++failed_since_log_;
      last_topic_ = message.rkt ? rd_kafka_topic_name(message.rkt) : "";
      last_error_ = rd_kafka_err2str(message.err);  // (message_errstr() is the payload here)
      if (failed_since_log_ == 1 && next_log_ <= absl::Now()) {
        Log(LogLevel::kWarning, kComponent, "delivery failed", {{"topic", last_topic_}, {"error", last_error_}});
        failed_since_log_ = 0;
        next_log_ = absl::Now() + absl::Seconds(1);
      } else {
        Summarize(absl::Now());
      }
    }
    if (cb == nullptr) return;
    (*cb)(FromErr(code, "delivery"));
    delete cb;
  }

 private:
  // Logs the failures counted since the last line, if `now` is past the
  // next log time. The poller thread delivers, and the destructor drains
  // what is left; the mutex also keeps the summary from racing the
  // destructor's (AddressSanitizer found such a race in a chaos run, when
  // flush() still served reports on any thread).
  void Summarize(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (failed_since_log_ == 0 || now < next_log_) return;
    Log(LogLevel::kWarning, kComponent, "deliveries failed",
        {{"count", absl::StrCat(failed_since_log_)}, {"last_topic", last_topic_}, {"last_error", last_error_}});
    failed_since_log_ = 0;
    next_log_ = (now == absl::InfiniteFuture() ? absl::Now() : now) + absl::Seconds(1);
  }
  absl::Mutex mu_;
  int64_t failed_since_log_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string last_topic_ ABSL_GUARDED_BY(mu_), last_error_ ABSL_GUARDED_BY(mu_);
};

// librdkafka's group metadata, as RdConsumer hands it to RdProducer.
struct RdGroupMetadata : GroupMetadata {
  std::unique_ptr<RdKafka::ConsumerGroupMetadata> metadata;
};

class RdProducer : public Producer {
 public:
  static absl::StatusOr<std::unique_ptr<Producer>> Create(const Properties& properties) {
    auto self = std::unique_ptr<RdProducer>(new RdProducer());
    auto conf = MakeConf(properties);
    if (!conf.ok()) return conf.status();
    std::string err;
    // Delivery reports as events, served by the poller thread alone. With
    // callbacks, flush() — and so commit_transaction(), which flushes first —
    // served them too, on its own thread, racing the poller: when the poller
    // took the last report, flush() slept out its 10 ms poll before seeing
    // the count at zero, and a commit took up to 10 ms longer than its
    // messages' acknowledgements (seen in librdkafka's eos debug log: the
    // last report, then "flush complete" 9 ms later). In event mode flush()
    // waits on the count of undelivered messages, woken as the poller frees
    // each report.
    rd_kafka_conf_set_events((*conf)->c_ptr_global(), RD_KAFKA_EVENT_DR);
    self->producer_.reset(RdKafka::Producer::create(conf->get(), err));
    if (!self->producer_) return absl::InvalidArgumentError(absl::StrCat("producer: ", err));
    self->events_ = rd_kafka_queue_get_main(self->producer_->c_ptr());
    self->poller_ = std::thread([p = self.get()] {
      while (!p->stop_.load()) p->ServeEvents(50);
    });
    return std::unique_ptr<Producer>(std::move(self));
  }

  ~RdProducer() override {
    // The poller delivers the reports flush() waits for; what is still
    // queued once it stops is delivered here.
    if (producer_) producer_->flush(10'000);
    stop_.store(true);
    if (poller_.joinable()) poller_.join();
    if (events_) {
      while (ServeEvents(0)) {
      }
      rd_kafka_queue_destroy(events_);
    }
  }

  absl::Status Produce(OutboundMessage m, DeliveryCallback on_delivery) override {
    auto* cb = on_delivery ? new DeliveryCallback(std::move(on_delivery)) : nullptr;
    absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (true) {
      RdKafka::Headers* headers = RdKafka::Headers::create();
      for (const auto& [k, v] : m.headers) headers->add(k, v.data(), v.size());
      void* value = m.payload.empty() ? nullptr : m.payload.data();  // null = tombstone
      RdKafka::ErrorCode code = producer_->produce(
          m.topic, m.partition >= 0 ? m.partition : RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
          value, m.payload.size(), m.key.data(), m.key.size(), 0, headers, cb);
      if (code == RdKafka::ERR_NO_ERROR) return absl::OkStatus();
      delete headers;  // ownership passes to librdkafka only on success
      if (code != RdKafka::ERR__QUEUE_FULL || absl::Now() > give_up) {
        delete cb;
        return FromErr(code, absl::StrCat("produce to ", m.topic));
      }
      // Back-pressure: the local queue drains as the poller delivers.
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  absl::Status Flush(absl::Duration timeout) override {
    return FromErr(producer_->flush(Ms(timeout)), "flush");
  }

  absl::Status InitTransactions(absl::Duration timeout) override {
    return FromTxnError(producer_->init_transactions(Ms(timeout)), "init_transactions");
  }
  absl::Status BeginTransaction() override {
    return FromTxnError(producer_->begin_transaction(), "begin_transaction");
  }
  absl::Status SendOffsetsToTransaction(const std::vector<TopicPartition>& offsets, const GroupMetadata& group,
                                        absl::Duration timeout) override;
  absl::Status CommitTransaction(absl::Duration timeout) override {
    return FromTxnError(producer_->commit_transaction(Ms(timeout)), "commit_transaction");
  }
  absl::Status AbortTransaction(absl::Duration timeout) override {
    return FromTxnError(producer_->abort_transaction(Ms(timeout)), "abort_transaction");
  }

  absl::Status Warm(const std::string& topic, absl::Duration timeout) override {
    std::string err;
    std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(producer_.get(), topic, nullptr, err));
    if (!t) return absl::InvalidArgumentError(err);
    RdKafka::Metadata* md = nullptr;
    auto code = producer_->metadata(false, t.get(), &md, Ms(timeout));
    delete md;
    if (code != RdKafka::ERR_NO_ERROR) return FromErr(code, "metadata " + topic);
    return absl::OkStatus();
  }

 private:
  RdProducer() = default;

  // Serves one event of the main queue (delivery reports; errors, should
  // librdkafka queue them as events too), waiting up to `timeout_ms`.
  // Returns whether there was one.
  bool ServeEvents(int timeout_ms) {
    rd_kafka_event_t* event = rd_kafka_queue_poll(events_, timeout_ms);
    if (event == nullptr) return false;
    switch (rd_kafka_event_type(event)) {
      case RD_KAFKA_EVENT_DR:
        while (const rd_kafka_message_t* m = rd_kafka_event_message_next(event)) delivery_.Deliver(*m);
        break;
      case RD_KAFKA_EVENT_ERROR: {
        const bool fatal = rd_kafka_event_error_is_fatal(event);
        Log(fatal ? LogLevel::kError : LogLevel::kWarning, kComponent, rd_kafka_event_error_string(event),
            {{"error", rd_kafka_err2str(rd_kafka_event_error(event))}});
        break;
      }
      default:
        break;
    }
    rd_kafka_event_destroy(event);
    return true;
  }

  DeliveryBridge delivery_;
  std::unique_ptr<RdKafka::Producer> producer_;
  rd_kafka_queue_t* events_ = nullptr;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

std::vector<RdKafka::TopicPartition*> ToRd(const std::vector<TopicPartition>& tps) {
  std::vector<RdKafka::TopicPartition*> out;
  for (const auto& tp : tps) out.push_back(RdKafka::TopicPartition::create(tp.topic, tp.partition, tp.offset));
  return out;
}

std::vector<TopicPartition> FromRd(const std::vector<RdKafka::TopicPartition*>& tps) {
  std::vector<TopicPartition> out;
  for (const auto* tp : tps) out.push_back(TopicPartition{tp->topic(), tp->partition(), tp->offset()});
  return out;
}

class RebalanceBridge : public RdKafka::RebalanceCb {
 public:
  explicit RebalanceBridge(RebalanceListener* listener) : listener_(listener) {}
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
    auto tps = FromRd(partitions);
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      if (cooperative) {
        if (RdKafka::Error* e = consumer->incremental_assign(partitions)) {
          Log(LogLevel::kError, kComponent, "incremental_assign failed", {{"error", e->str()}});
          delete e;
        }
      } else if (RdKafka::ErrorCode code = consumer->assign(partitions); code != RdKafka::ERR_NO_ERROR) {
        Log(LogLevel::kError, kComponent, "assign failed", {{"error", RdKafka::err2str(code)}});
      }
      if (listener_) listener_->OnAssigned(tps);
    } else {
      if (listener_) listener_->OnRevoked(tps);
      if (cooperative) {
        if (RdKafka::Error* e = consumer->incremental_unassign(partitions)) {
          Log(LogLevel::kError, kComponent, "incremental_unassign failed", {{"error", e->str()}});
          delete e;
        }
      } else if (RdKafka::ErrorCode code = consumer->unassign(); code != RdKafka::ERR_NO_ERROR) {
        Log(LogLevel::kError, kComponent, "unassign failed", {{"error", RdKafka::err2str(code)}});
      }
    }
  }

 private:
  RebalanceListener* listener_;
};

// A consumed message, copied out of librdkafka's buffers once. Read through
// the C API: the C++ wrapper's headers() copies every header into a new
// list, get_all() copies them again into a vector, and consume() allocates a
// wrapper per message; a message here carries three headers, so that was ten
// allocations per consumed message before its own copies.
Message FromRdMessage(const rd_kafka_message_t& m) {
  Message msg;
  msg.topic = rd_kafka_topic_name(m.rkt);
  msg.partition = m.partition;
  msg.offset = m.offset;
  if (m.key != nullptr) msg.key.assign(static_cast<const char*>(m.key), m.key_len);
  if (m.payload != nullptr) msg.payload.assign(static_cast<const char*>(m.payload), m.len);
  rd_kafka_headers_t* headers = nullptr;  // owned by the message
  if (rd_kafka_message_headers(&m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    msg.headers.reserve(rd_kafka_header_cnt(headers));
    for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
      msg.headers.emplace_back(name, value == nullptr ? std::string() : std::string(static_cast<const char*>(value), size));
    }
  }
  msg.timestamp_ms = rd_kafka_message_timestamp(&m, nullptr);
  return msg;
}
Message FromRdMessage(RdKafka::Message& m) { return FromRdMessage(*m.c_ptr()); }

class RdConsumer : public Consumer {
 public:
  static absl::StatusOr<std::unique_ptr<Consumer>> Create(const Properties& properties,
                                                          RebalanceListener* listener) {
    auto self = std::unique_ptr<RdConsumer>(new RdConsumer(listener));
    auto conf = MakeConf(properties);
    if (!conf.ok()) return conf.status();
    std::string err;
    if ((*conf)->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(&self->rebalance_), err) !=
        RdKafka::Conf::CONF_OK) {
      return absl::InternalError(err);
    }
    if (properties.count("group.id") == 0 && (*conf)->set("group.id", "agentfleet-reader", err) != RdKafka::Conf::CONF_OK) {
      return absl::InternalError(err);
    }
    self->consumer_.reset(RdKafka::KafkaConsumer::create(conf->get(), err));
    if (!self->consumer_) return absl::InvalidArgumentError(absl::StrCat("consumer: ", err));
    return std::unique_ptr<Consumer>(std::move(self));
  }

  ~RdConsumer() override { Close(); }

  absl::Status Subscribe(const std::vector<std::string>& topics) override {
    return FromErr(consumer_->subscribe(topics), "subscribe");
  }

  absl::Status Assign(const std::vector<TopicPartition>& partitions) override {
    auto rd = ToRd(partitions);
    auto code = consumer_->assign(rd);
    RdKafka::TopicPartition::destroy(rd);
    return FromErr(code, "assign");
  }

  void PollInto(absl::Duration timeout, size_t max_messages, std::vector<Message>* out) override {
    // rd_kafka_consumer_poll() is what the C++ consume() calls (rebalance
    // and log callbacks included), without its per-message wrapper.
    int wait_ms = Ms(timeout);
    for (size_t taken = 0; taken < max_messages;) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_->c_ptr(), taken == 0 ? wait_ms : 0);
      if (m == nullptr) return;  // timed out
      const rd_kafka_resp_err_t err = m->err;
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        out->push_back(FromRdMessage(*m));
        ++taken;
      } else if (err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        Log(LogLevel::kWarning, kComponent, "consume error", {{"error", rd_kafka_message_errstr(m)}});
      }
      rd_kafka_message_destroy(m);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    }
  }

  absl::Status StoreOffset(const std::string& topic, int32_t partition, int64_t next_offset) override {
    std::vector<RdKafka::TopicPartition*> tps = {RdKafka::TopicPartition::create(topic, partition, next_offset)};
    auto code = consumer_->offsets_store(tps);
    RdKafka::TopicPartition::destroy(tps);
    return FromErr(code, "offsets_store");
  }

  absl::Status RewindToCommitted(absl::Duration timeout) override {
    std::vector<RdKafka::TopicPartition*> tps;
    if (auto code = consumer_->assignment(tps); code != RdKafka::ERR_NO_ERROR) return FromErr(code, "assignment");
    absl::Status status;
    if (auto code = consumer_->committed(tps, Ms(timeout)); code != RdKafka::ERR_NO_ERROR) {
      status = FromErr(code, "committed offsets");
    }
    for (RdKafka::TopicPartition* tp : tps) {
      if (!status.ok()) break;
      if (tp->offset() < 0) tp->set_offset(RdKafka::Topic::OFFSET_BEGINNING);
      if (auto code = consumer_->seek(*tp, Ms(timeout)); code != RdKafka::ERR_NO_ERROR) {
        status = FromErr(code, absl::StrCat("seek ", tp->topic(), "/", tp->partition()));
      }
    }
    RdKafka::TopicPartition::destroy(tps);
    return status;
  }

  absl::Status CommitStored() override {
    auto code = consumer_->commitSync();
    // Nothing stored since the last commit is not an error.
    if (code == RdKafka::ERR__NO_OFFSET) return absl::OkStatus();
    return FromErr(code, "commit");
  }

  absl::Status Pause(const std::vector<TopicPartition>& partitions) override {
    auto rd = ToRd(partitions);
    auto code = consumer_->pause(rd);
    RdKafka::TopicPartition::destroy(rd);
    return FromErr(code, "pause");
  }

  absl::Status Resume(const std::vector<TopicPartition>& partitions) override {
    auto rd = ToRd(partitions);
    auto code = consumer_->resume(rd);
    RdKafka::TopicPartition::destroy(rd);
    return FromErr(code, "resume");
  }

  std::vector<TopicPartition> Assignment() override {
    std::vector<RdKafka::TopicPartition*> rd;
    consumer_->assignment(rd);
    auto out = FromRd(rd);
    RdKafka::TopicPartition::destroy(rd);
    return out;
  }

  std::unique_ptr<GroupMetadata> CurrentGroupMetadata() override {
    auto group = std::make_unique<RdGroupMetadata>();
    group->metadata.reset(consumer_->groupMetadata());
    return group;
  }

  std::vector<TopicPartition> Positions() override {
    std::vector<RdKafka::TopicPartition*> rd;
    consumer_->assignment(rd);
    if (consumer_->position(rd) != RdKafka::ERR_NO_ERROR) {
      RdKafka::TopicPartition::destroy(rd);
      return {};
    }
    auto out = FromRd(rd);
    RdKafka::TopicPartition::destroy(rd);
    return out;
  }

  std::vector<PartitionProgress> Progress(absl::Duration timeout) override {
    std::vector<RdKafka::TopicPartition*> rd;
    std::vector<PartitionProgress> out;
    if (consumer_->assignment(rd) != RdKafka::ERR_NO_ERROR || rd.empty()) {
      RdKafka::TopicPartition::destroy(rd);
      return out;
    }
    std::vector<RdKafka::TopicPartition*> committed;
    for (auto* tp : rd) committed.push_back(RdKafka::TopicPartition::create(tp->topic(), tp->partition()));
    bool have_committed = consumer_->committed(committed, std::max(1, Ms(timeout))) == RdKafka::ERR_NO_ERROR;
    bool have_position = consumer_->position(rd) == RdKafka::ERR_NO_ERROR;
    for (size_t i = 0; i < rd.size(); ++i) {
      PartitionProgress p;
      p.topic = rd[i]->topic();
      p.partition = rd[i]->partition();
      if (have_position) p.position = rd[i]->offset();
      if (have_committed && committed[i]->offset() >= 0) p.committed = committed[i]->offset();
      int64_t low = -1, high = -1;
      if (consumer_->get_watermark_offsets(p.topic, p.partition, &low, &high) == RdKafka::ERR_NO_ERROR && high >= 0) {
        p.high = high;
      }
      out.push_back(std::move(p));
    }
    RdKafka::TopicPartition::destroy(rd);
    RdKafka::TopicPartition::destroy(committed);
    return out;
  }

  absl::StatusOr<int64_t> QueryEnd(const std::string& topic, int32_t partition, absl::Duration timeout) override {
    int64_t high = -1;
    RdKafka::ErrorCode code =
        ListOffset(consumer_.get(), topic, partition, RdKafka::Topic::OFFSET_END, std::max(1, Ms(timeout)), &high);
    if (code != RdKafka::ERR_NO_ERROR) return FromErr(code, absl::StrCat("query the end of ", topic, "/", partition));
    return high;
  }

  absl::Status RestartFetch(const std::string& topic, int32_t partition, absl::Duration timeout) override {
    std::vector<RdKafka::TopicPartition*> tps = {RdKafka::TopicPartition::create(topic, partition)};
    absl::Status status = FromErr(consumer_->resume(tps), "resume");
    if (status.ok() && consumer_->position(tps) == RdKafka::ERR_NO_ERROR && tps[0]->offset() < 0) {
      if (auto code = consumer_->committed(tps, Ms(timeout)); code != RdKafka::ERR_NO_ERROR) {
        status = FromErr(code, "committed offsets");
      } else if (tps[0]->offset() < 0) {
        tps[0]->set_offset(RdKafka::Topic::OFFSET_BEGINNING);
      }
    }
    if (status.ok()) {
      RdKafka::ErrorCode code = consumer_->seek(*tps[0], Ms(timeout));
      // Not started: librdkafka leaves a partition whose committed-offset
      // lookup failed assigned but never fetched, "until the application
      // unassigns it and possibly re-assigns it" (rdkafka_assignment.c), and
      // a seek needs a started fetcher. Assign it again, from the same offset.
      status = code == RdKafka::ERR__STATE ? Reassign(*tps[0]) : FromErr(code, absl::StrCat("seek ", topic, "/", partition));
    }
    RdKafka::TopicPartition::destroy(tps);
    return status;
  }

  absl::Status Ping(absl::Duration timeout) override {
    RdKafka::Metadata* md = nullptr;
    auto code = consumer_->metadata(/*all_topics=*/false, nullptr, &md, Ms(timeout));
    delete md;
    return FromErr(code, "metadata");
  }

  void Close() override {
    if (consumer_ && !closed_) {
      closed_ = true;
      consumer_->close();
    }
  }

  RdKafka::KafkaConsumer* raw() { return consumer_.get(); }

 private:
  explicit RdConsumer(RebalanceListener* listener) : rebalance_(listener) {}

  // Takes `tp` out of the assignment and puts it back at tp.offset, every
  // other partition left where it is: incrementally under the cooperative
  // protocol; under the eager one, where only a whole assignment can be
  // given, the others at their positions (one not yet consumed has none,
  // OFFSET_INVALID: its committed offset, as before). No rebalance callback runs: the
  // partition stays this member's.
  absl::Status Reassign(const RdKafka::TopicPartition& tp) {
    std::vector<RdKafka::TopicPartition*> one = {RdKafka::TopicPartition::create(tp.topic(), tp.partition(), tp.offset())};
    absl::Status status;
    if (consumer_->rebalance_protocol() == "COOPERATIVE") {
      for (bool assign : {false, true}) {
        RdKafka::Error* e = assign ? consumer_->incremental_assign(one) : consumer_->incremental_unassign(one);
        if (e != nullptr && status.ok()) status = absl::UnavailableError(absl::StrCat(assign ? "incremental_assign: " : "incremental_unassign: ", e->str()));
        delete e;
      }
    } else {
      std::vector<RdKafka::TopicPartition*> all;
      status = FromErr(consumer_->assignment(all), "assignment");
      if (status.ok()) status = FromErr(consumer_->position(all), "position");
      for (RdKafka::TopicPartition* p : all) {
        if (p->topic() == tp.topic() && p->partition() == tp.partition()) p->set_offset(tp.offset());
      }
      if (status.ok()) status = FromErr(consumer_->assign(all), "assign");
      RdKafka::TopicPartition::destroy(all);
    }
    RdKafka::TopicPartition::destroy(one);
    if (!status.ok()) return status;
    Log(LogLevel::kWarning, kComponent, "partition was assigned but never started; assigned it again",
        {{"topic", tp.topic()}, {"partition", absl::StrCat(tp.partition())}, {"offset", absl::StrCat(tp.offset())}});
    return absl::OkStatus();
  }
  RebalanceBridge rebalance_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  bool closed_ = false;
};

absl::Status RdProducer::SendOffsetsToTransaction(const std::vector<TopicPartition>& offsets,
                                                  const GroupMetadata& group, absl::Duration timeout) {
  const auto* rd_group = dynamic_cast<const RdGroupMetadata*>(&group);
  if (rd_group == nullptr || rd_group->metadata == nullptr) {
    return absl::InvalidArgumentError("send_offsets_to_transaction: not a librdkafka consumer's group metadata");
  }
  auto rd = ToRd(offsets);
  absl::Status s = FromTxnError(producer_->send_offsets_to_transaction(rd, rd_group->metadata.get(), Ms(timeout)),
                                "send_offsets_to_transaction");
  RdKafka::TopicPartition::destroy(rd);
  return s;
}

// A short-lived producer handle for metadata and admin calls.
absl::StatusOr<std::unique_ptr<RdKafka::Producer>> AdminHandle(const Properties& properties) {
  Properties props = properties;
  for (const char* consumer_only : {"group.id", "enable.auto.commit", "enable.auto.offset.store",
                                    "auto.offset.reset", "partition.assignment.strategy",
                                    "session.timeout.ms", "heartbeat.interval.ms",
                                    "fetch.wait.max.ms", "isolation.level", "max.poll.interval.ms"}) {
    props.erase(consumer_only);
  }
  auto conf = MakeConf(props);
  if (!conf.ok()) return conf.status();
  std::string err;
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf->get(), err));
  if (!p) return absl::InvalidArgumentError(absl::StrCat("admin client: ", err));
  return p;
}

// Partition count of `topic`, once every partition has a leader; retries
// transient errors (topic not yet propagated, leader elections) until `timeout`.
absl::StatusOr<int> ReadyPartitionCount(RdKafka::Handle* handle, const std::string& topic,
                                        absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  std::string err;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(handle, topic, nullptr, err));
  if (!t) return absl::InvalidArgumentError(err);
  absl::Status last;
  do {
    RdKafka::Metadata* md = nullptr;
    int wait_ms = std::max(1, Ms(std::min(deadline - absl::Now(), absl::Seconds(5))));
    auto code = handle->metadata(false, t.get(), &md, wait_ms);
    std::unique_ptr<RdKafka::Metadata> owner(md);
    if (code != RdKafka::ERR_NO_ERROR) {
      last = FromErr(code, "metadata " + topic);
    } else {
      for (const auto* tm : *md->topics()) {
        if (tm->topic() != topic) continue;
        if (tm->err() != RdKafka::ERR_NO_ERROR) {
          last = FromErr(tm->err(), "topic " + topic);
          break;
        }
        bool leaders = !tm->partitions()->empty();
        for (const auto* pm : *tm->partitions()) leaders = leaders && pm->leader() >= 0 && pm->err() == RdKafka::ERR_NO_ERROR;
        if (leaders) return static_cast<int>(tm->partitions()->size());
        last = absl::UnavailableError("topic " + topic + " has partitions without a leader");
      }
    }
    absl::SleepFor(absl::Milliseconds(100));
  } while (absl::Now() < deadline);
  return last.ok() ? absl::DeadlineExceededError("metadata " + topic) : last;
}

// Asks for the topics' metadata once each (errors ignored: the read that
// follows reports its own), so an assign() finds each partition's leader at
// once: without it a logical offset (the beginning, a tail) waits for
// librdkafka's offset-query retry, 500 ms.
void WarmMetadata(RdKafka::Handle* handle, const std::set<std::string>& topics, absl::Time deadline) {
  for (const std::string& topic : topics) {
    std::string err;
    std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(handle, topic, nullptr, err));
    if (!t) continue;
    RdKafka::Metadata* md = nullptr;
    int wait_ms = std::max(1, Ms(std::min(deadline - absl::Now(), absl::Seconds(5))));
    (void)handle->metadata(false, t.get(), &md, wait_ms);
    delete md;
  }
}

// Low and high watermark of one partition the caller knows exists (from a
// partition count or an assignment), asked of its leader. Leadership moves and
// fresh topics answer NOT_LEADER for a moment even after metadata shows a
// leader; and a handle whose metadata came from a broker that has not yet
// learnt of a fresh topic's partitions or leaders (a cluster of several
// nodes) answers "Unknown partition" from its cache until that topic's
// metadata is asked again. Both are retried, the latter after asking, until
// `deadline`.
absl::Status QueryPartitionWatermarks(RdKafka::Handle* handle, const std::string& topic, int32_t partition,
                                      absl::Time deadline, int64_t* low, int64_t* high) {
  while (true) {
    auto code = ListOffset(handle, topic, partition, RdKafka::Topic::OFFSET_BEGINNING,
                           std::max(1, Ms(deadline - absl::Now())), low);
    if (code == RdKafka::ERR_NO_ERROR) {
      code = ListOffset(handle, topic, partition, RdKafka::Topic::OFFSET_END, std::max(1, Ms(deadline - absl::Now())),
                        high);
    }
    if (code == RdKafka::ERR_NO_ERROR) return absl::OkStatus();
    absl::Status s = FromErr(code, absl::StrCat("watermarks ", topic, "/", partition));
    bool stale_metadata = code == RdKafka::ERR__UNKNOWN_PARTITION || code == RdKafka::ERR_LEADER_NOT_AVAILABLE ||
                          code == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART;
    if ((!absl::IsUnavailable(s) && !stale_metadata) || absl::Now() >= deadline) return s;
    absl::SleepFor(absl::Milliseconds(100));
    if (stale_metadata) WarmMetadata(handle, {topic}, deadline);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<RdKafka::Conf>> MakeConf(const Properties& properties) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (const auto& [name, value] : properties) {
    if (conf->set(name, value, err) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("Kafka property ", name, ": ", err));
    }
  }
  if (conf->set("event_cb", static_cast<RdKafka::EventCb*>(SharedLogBridge()), err) !=
      RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  return conf;
}

absl::StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> NewUnjoinedConsumer(Properties properties,
                                                                            const std::string& group,
                                                                            absl::string_view what) {
  properties["group.id"] = group;
  properties["enable.auto.commit"] = "false";
  properties.erase("group.instance.id");
  auto conf = MakeConf(properties);
  if (!conf.ok()) return conf.status();
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!consumer) return absl::InvalidArgumentError(absl::StrCat(what, ": ", err));
  return consumer;
}

absl::StatusOr<std::unique_ptr<Producer>> NewProducer(const Properties& properties) {
  return RdProducer::Create(properties);
}

absl::StatusOr<std::unique_ptr<Consumer>> NewConsumer(const Properties& properties,
                                                      RebalanceListener* listener) {
  return RdConsumer::Create(properties, listener);
}

absl::Status CreateTopics(const Properties& properties, const std::vector<TopicSpec>& topics,
                          absl::Duration timeout) {
  auto handle = AdminHandle(properties);
  if (!handle.ok()) return handle.status();
  rd_kafka_t* rk = (*handle)->c_ptr();
  char errstr[512];
  std::vector<rd_kafka_NewTopic_t*> new_topics;
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions,
                                                    t.replication_factor, errstr, sizeof errstr);
    if (nt == nullptr) {
      rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
      return absl::InvalidArgumentError(absl::StrCat("topic ", t.name, ": ", errstr));
    }
    for (const auto& [k, v] : t.configs) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    new_topics.push_back(nt);
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, Ms(timeout), errstr, sizeof errstr);
  rd_kafka_AdminOptions_set_request_timeout(options, Ms(timeout), errstr, sizeof errstr);
  rd_kafka_CreateTopics(rk, new_topics.data(), new_topics.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, Ms(timeout) + 2000);
  absl::Status status;
  if (event == nullptr) {
    status = absl::DeadlineExceededError("CreateTopics timed out");
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = absl::UnavailableError(absl::StrCat("CreateTopics: ", rd_kafka_event_error_string(event)));
  } else {
    size_t count = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    for (size_t i = 0; i < count; ++i) {
      rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        status = absl::InternalError(absl::StrCat("create topic ", rd_kafka_topic_result_name(results[i]),
                                                  ": ", rd_kafka_topic_result_error_string(results[i])));
        break;
      }
    }
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
  if (!status.ok()) return status;
  // Created is not yet usable: wait until every partition has a leader.
  for (const auto& t : topics) {
    auto ready = ReadyPartitionCount(handle->get(), t.name, timeout);
    if (!ready.ok()) return ready.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GroupDescription>> DescribeGroups(const Properties& properties,
                                                             const std::vector<std::string>& groups,
                                                             absl::Duration timeout) {
  auto handle = AdminHandle(properties);
  if (!handle.ok()) return handle.status();
  rd_kafka_t* rk = (*handle)->c_ptr();
  char errstr[512];
  std::vector<const char*> names;
  for (const std::string& g : groups) names.push_back(g.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
  rd_kafka_AdminOptions_set_request_timeout(options, Ms(timeout), errstr, sizeof errstr);
  rd_kafka_DescribeConsumerGroups(rk, names.data(), names.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, Ms(timeout) + 2000);
  absl::StatusOr<std::vector<GroupDescription>> out;
  if (event == nullptr) {
    out = absl::DeadlineExceededError("DescribeConsumerGroups timed out");
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    out = absl::UnavailableError(absl::StrCat("DescribeConsumerGroups: ", rd_kafka_event_error_string(event)));
  } else {
    out.emplace();
    size_t count = 0;
    const rd_kafka_ConsumerGroupDescription_t** described =
        rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(event), &count);
    for (size_t i = 0; i < count; ++i) {
      const rd_kafka_ConsumerGroupDescription_t* d = described[i];
      GroupDescription g;
      g.group = rd_kafka_ConsumerGroupDescription_group_id(d);
      g.state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d));
      if (const rd_kafka_error_t* e = rd_kafka_ConsumerGroupDescription_error(d)) g.error = rd_kafka_error_string(e);
      for (size_t m = 0; m < rd_kafka_ConsumerGroupDescription_member_count(d); ++m) {
        const rd_kafka_MemberDescription_t* member = rd_kafka_ConsumerGroupDescription_member(d, m);
        GroupMember gm;
        gm.client_id = rd_kafka_MemberDescription_client_id(member);
        gm.consumer_id = rd_kafka_MemberDescription_consumer_id(member);
        gm.host = rd_kafka_MemberDescription_host(member);
        const rd_kafka_topic_partition_list_t* parts =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(member));
        for (int p = 0; parts != nullptr && p < parts->cnt; ++p) {
          gm.assignment.push_back({parts->elems[p].topic, parts->elems[p].partition});
        }
        std::sort(gm.assignment.begin(), gm.assignment.end());
        g.members.push_back(std::move(gm));
      }
      out->push_back(std::move(g));
    }
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  return out;
}

absl::StatusOr<int> PartitionCount(const Properties& properties, const std::string& topic,
                                   absl::Duration timeout) {
  auto handle = AdminHandle(properties);
  if (!handle.ok()) return handle.status();
  return ReadyPartitionCount(handle->get(), topic, timeout);
}

absl::StatusOr<std::vector<Watermarks>> QueryWatermarks(const Properties& properties,
                                                        const std::string& topic,
                                                        absl::Duration timeout) {
  auto count = PartitionCount(properties, topic, timeout);
  if (!count.ok()) return count.status();
  auto handle = AdminHandle(properties);
  if (!handle.ok()) return handle.status();
  std::vector<Watermarks> out(*count);
  absl::Time deadline = absl::Now() + timeout;
  for (int p = 0; p < *count; ++p) {
    RETURN_IF_ERROR(QueryPartitionWatermarks(handle->get(), topic, p, deadline, &out[p].low, &out[p].high));
  }
  return out;
}

namespace {

// Reads `partitions` of `topic` (all of them if empty) from the beginning to
// their end as it is when the read starts (read_committed), and keeps the
// messages `keep` accepts.
absl::StatusOr<std::vector<Message>> ScanToEnd(const Properties& properties, const std::string& topic,
                                              std::vector<int32_t> partitions, absl::Duration timeout,
                                              bool to_high_watermark,
                                              const std::function<bool(const RdKafka::Message&)>& keep,
                                              int64_t tail = 0, absl::Time since = absl::InfinitePast()) {
  std::vector<Message> out;
  Properties props = properties;
  props["enable.partition.eof"] = "true";
  // A fetch at a partition's end is answered after fetch.wait.max.ms (500 ms
  // by default) when nothing comes: a reader that stops at the end hears so
  // sooner.
  props.emplace("fetch.wait.max.ms", "50");
  props["isolation.level"] = "read_committed";
  std::string group = props.count("group.id") ? props["group.id"] : "agentfleet-reader";
  auto made = NewUnjoinedConsumer(props, group, "reader");
  if (!made.ok()) return made.status();
  std::unique_ptr<RdKafka::KafkaConsumer> consumer = std::move(*made);
  if (partitions.empty()) {
    auto count = ReadyPartitionCount(consumer.get(), topic, timeout);
    if (!count.ok()) {
      consumer->close();
      return count.status();
    }
    for (int p = 0; p < *count; ++p) partitions.push_back(p);
  }
  std::vector<TopicPartition> tps;
  for (int32_t p : partitions) {
    tps.push_back({topic, p, tail > 0 ? RdKafka::Consumer::OffsetTail(tail) : RdKafka::Topic::OFFSET_BEGINNING});
  }
  absl::Time deadline = absl::Now() + timeout;
  WarmMetadata(consumer.get(), {topic}, deadline);
  if (since != absl::InfinitePast()) {
    // The first offset of each partition whose timestamp is at or after
    // `since` (the end when none is).
    for (TopicPartition& tp : tps) tp.offset = absl::ToUnixMillis(since);
    auto query = ToRd(tps);
    RdKafka::ErrorCode found = consumer->offsetsForTimes(query, Ms(deadline - absl::Now()));
    for (size_t i = 0; i < tps.size() && found == RdKafka::ERR_NO_ERROR; ++i) {
      tps[i].offset = query[i]->offset() >= 0 ? query[i]->offset() : RdKafka::Topic::OFFSET_END;
    }
    RdKafka::TopicPartition::destroy(query);
    if (found != RdKafka::ERR_NO_ERROR) {
      consumer->close();
      return FromErr(found, "offsets for times of " + topic);
    }
  }
  auto rd = ToRd(tps);
  RdKafka::ErrorCode code = consumer->assign(rd);
  RdKafka::TopicPartition::destroy(rd);
  if (code != RdKafka::ERR_NO_ERROR) return FromErr(code, "assign " + topic);
  // With `to_high_watermark`, a partition is read once the position reaches
  // its high watermark as it was when the read started, not just its end as
  // a read_committed consumer sees it (the last stable offset): right after a
  // commit, the broker may not have written the transaction's markers yet, so
  // the last stable offset can still precede the writer's own committed
  // records (a restore would then miss them), and another writer's open
  // transaction holds it back until that transaction ends.
  std::map<int32_t, int64_t> target;
  if (to_high_watermark) {
    // Asked with read_uncommitted: a read_committed client's ListOffsets
    // answers the last stable offset, not the high watermark.
    Properties hw_props = props;
    hw_props["isolation.level"] = "read_uncommitted";
    auto made_hw = NewUnjoinedConsumer(hw_props, group + "-hw", "reader");
    if (!made_hw.ok()) return made_hw.status();
    std::unique_ptr<RdKafka::KafkaConsumer> hw = std::move(*made_hw);
    WarmMetadata(hw.get(), {topic}, deadline);
    absl::Status s;
    for (int32_t p : partitions) {
      int64_t low = 0, high = 0;
      s = QueryPartitionWatermarks(hw.get(), topic, p, deadline, &low, &high);
      if (!s.ok()) break;
      if (high > low) target[p] = high;  // else nothing to read: its end-of-partition will do
    }
    hw->close();
    if (!s.ok()) {
      consumer->close();
      return s;
    }
  }
  std::set<int32_t> open(partitions.begin(), partitions.end());
  std::set<int32_t> at_end;  // saw an end-of-partition below the target
  auto reached = [&](int32_t p) {
    auto t = target.find(p);
    if (t == target.end()) return true;
    std::vector<RdKafka::TopicPartition*> pos = {RdKafka::TopicPartition::create(topic, p)};
    bool done = consumer->position(pos) == RdKafka::ERR_NO_ERROR && pos[0]->offset() >= t->second;
    RdKafka::TopicPartition::destroy(pos);
    return done;
  };
  while (!open.empty()) {
    if (absl::Now() > deadline) {
      consumer->close();
      return absl::DeadlineExceededError(absl::StrCat("reading ", topic, ": ", open.size(),
                                                      " partition(s) did not reach their end"));
    }
    std::unique_ptr<RdKafka::Message> m(consumer->consume(100));
    // Markers past the last message move the position without a message.
    for (auto it = at_end.begin(); it != at_end.end();) {
      if (reached(*it)) {
        open.erase(*it);
        it = at_end.erase(it);
      } else {
        ++it;
      }
    }
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      if (reached(m->partition())) {
        open.erase(m->partition());
        at_end.erase(m->partition());
      } else if (at_end.insert(m->partition()).second) {
        Log(LogLevel::kInfo, kComponent, "read reached the last stable offset below the high watermark; waiting for open transactions",
            {{"topic", topic}, {"partition", absl::StrCat(m->partition())}, {"high_watermark", absl::StrCat(target[m->partition()])}});
      }
    } else if (m->err() == RdKafka::ERR_NO_ERROR) {
      if (keep(*m)) out.push_back(FromRdMessage(*m));
    } else if (m->err() != RdKafka::ERR__TIMED_OUT) {
      Log(LogLevel::kWarning, kComponent, "read error", {{"topic", topic}, {"error", m->errstr()}});
    }
  }
  consumer->close();
  return out;
}

}  // namespace

absl::StatusOr<std::vector<Message>> ReadPartitionsSince(const Properties& properties, const std::string& topic,
                                                         const std::vector<int32_t>& partitions, absl::Time since,
                                                         absl::Duration timeout) {
  if (partitions.empty()) return std::vector<Message>();
  return ScanToEnd(
      properties, topic, partitions, timeout, /*to_high_watermark=*/true, [](const RdKafka::Message&) { return true; },
      /*tail=*/0, since);
}

absl::StatusOr<std::vector<Message>> ReadPartitionsToEnd(const Properties& properties,
                                                         const std::string& topic,
                                                         const std::vector<int32_t>& partitions,
                                                         absl::Duration timeout) {
  if (partitions.empty()) return std::vector<Message>();
  return ScanToEnd(properties, topic, partitions, timeout, /*to_high_watermark=*/true,
                   [](const RdKafka::Message&) { return true; });
}

absl::StatusOr<std::vector<Message>> ReadPartitionTails(const Properties& properties, const std::string& topic,
                                                        const std::vector<int32_t>& partitions, int64_t count,
                                                        absl::Duration timeout) {
  if (partitions.empty()) return std::vector<Message>();
  return ScanToEnd(properties, topic, partitions, timeout, /*to_high_watermark=*/true,
                   [](const RdKafka::Message&) { return true; }, count);
}

absl::StatusOr<std::vector<Message>> ReadKeyToEnd(const Properties& properties, const std::string& topic,
                                                  const std::string& key, absl::Duration timeout) {
  return ScanToEnd(properties, topic, {}, timeout, /*to_high_watermark=*/false, [&key](const RdKafka::Message& m) {
    return m.key_len() == key.size() && (key.empty() || std::memcmp(m.key_pointer(), key.data(), key.size()) == 0);
  });
}

int32_t KeyPartition(absl::string_view key, int32_t partitions) {
  // librdkafka's murmur2 partitioner (the Java client's) reads neither the
  // topic nor the opaques.
  return rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), partitions, nullptr, nullptr);
}

absl::StatusOr<std::map<std::string, int>> PartitionCounts(const Properties& properties,
                                                           const std::vector<std::string>& topics,
                                                           absl::Duration timeout) {
  auto handle = AdminHandle(properties);
  if (!handle.ok()) return handle.status();
  absl::Time deadline = absl::Now() + timeout;
  std::map<std::string, int> out;
  for (const std::string& topic : topics) {
    auto count = ReadyPartitionCount(handle->get(), topic, std::max(deadline - absl::Now(), absl::Milliseconds(1)));
    if (!count.ok()) return count.status();
    out[topic] = *count;
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> OffsetsAtTimes(const Properties& properties,
                                                    const std::vector<TimeQuery>& queries, absl::Duration timeout) {
  std::vector<int64_t> out(queries.size(), -1);
  if (queries.empty()) return out;
  auto made = NewUnjoinedConsumer(properties, "agentfleet-reader", "offsets reader");
  if (!made.ok()) return made.status();
  std::unique_ptr<RdKafka::KafkaConsumer> consumer = std::move(*made);
  absl::Time deadline = absl::Now() + timeout;
  // One request answers a partition once (librdkafka matches answers by
  // partition), so a partition asked about twice is asked in a second round.
  std::vector<size_t> pending(queries.size());
  for (size_t i = 0; i < queries.size(); ++i) pending[i] = i;
  absl::Status status;
  while (!pending.empty() && status.ok()) {
    std::set<std::pair<std::string, int32_t>> asked;
    std::vector<size_t> round, later;
    for (size_t i : pending) {
      (asked.insert({queries[i].topic, queries[i].partition}).second ? round : later).push_back(i);
    }
    std::vector<TopicPartition> tps;
    for (size_t i : round) {
      tps.push_back({queries[i].topic, queries[i].partition, std::max<int64_t>(0, absl::ToUnixMillis(queries[i].at))});
    }
    auto query = ToRd(tps);
    RdKafka::ErrorCode code = consumer->offsetsForTimes(query, std::max(1, Ms(deadline - absl::Now())));
    status = FromErr(code, "offsets for times");
    for (size_t k = 0; k < round.size() && status.ok(); ++k) {
      int64_t offset = query[k]->offset();
      if (offset < 0) {  // nothing at or after the time: the partition's end
        int64_t low = 0;
        status = QueryPartitionWatermarks(consumer.get(), tps[k].topic, tps[k].partition, deadline, &low, &offset);
      }
      out[round[k]] = offset;
    }
    RdKafka::TopicPartition::destroy(query);
    pending = std::move(later);
  }
  consumer->close();  // never joined: leaves nothing behind
  if (!status.ok()) return status;
  return out;
}

namespace {

// ReadKeysInRanges, and ReadRanges with `keys` null.
absl::StatusOr<std::vector<Message>> ReadRangesOfKeys(const Properties& properties,
                                                      const std::vector<OffsetRange>& ranges,
                                                      const absl::flat_hash_set<std::string>* keys,
                                                      absl::Duration timeout, int64_t* scanned) {
  std::vector<Message> out;
  std::vector<TopicPartition> tps;
  std::map<std::pair<std::string, int32_t>, int64_t> open;  // partition -> the end of its range
  for (const OffsetRange& r : ranges) {
    if (r.begin >= 0 && r.begin >= r.end) continue;
    tps.push_back({r.topic, r.partition, r.begin == OffsetRange::kBeginning ? RdKafka::Topic::OFFSET_BEGINNING : r.begin});
    open[{r.topic, r.partition}] = r.end;
  }
  if (tps.empty()) return out;
  Properties props = properties;
  props["enable.partition.eof"] = "true";
  // A fetch at a partition's end is answered after fetch.wait.max.ms (500 ms
  // by default) when nothing comes: a reader that stops at the end hears so
  // sooner.
  props.emplace("fetch.wait.max.ms", "50");
  props["isolation.level"] = "read_committed";
  auto made = NewUnjoinedConsumer(props, props.count("group.id") ? props["group.id"] : "agentfleet-reader", "reader");
  if (!made.ok()) return made.status();
  std::unique_ptr<RdKafka::KafkaConsumer> consumer = std::move(*made);
  absl::Time deadline = absl::Now() + timeout;
  std::set<std::string> topics;
  for (const TopicPartition& tp : tps) topics.insert(tp.topic);
  WarmMetadata(consumer.get(), topics, deadline);
  auto rd = ToRd(tps);
  RdKafka::ErrorCode code = consumer->assign(rd);
  RdKafka::TopicPartition::destroy(rd);
  if (code != RdKafka::ERR_NO_ERROR) return FromErr(code, "assign");
  while (!open.empty()) {
    if (absl::Now() > deadline) {
      consumer->close();
      return absl::DeadlineExceededError(absl::StrCat("reading ", open.begin()->first.first, " and ", open.size() - 1,
                                                      " more partition(s): their ends were not reached"));
    }
    std::unique_ptr<RdKafka::Message> m(consumer->consume(100));
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {  // the end as a read_committed reader sees it
      open.erase({m->topic_name(), m->partition()});
      continue;
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) {
      if (m->err() != RdKafka::ERR__TIMED_OUT) {
        Log(LogLevel::kWarning, kComponent, "read error", {{"topic", m->topic_name()}, {"error", m->errstr()}});
      }
      continue;
    }
    auto it = open.find({m->topic_name(), m->partition()});
    if (it == open.end()) continue;  // fetched past its range's end
    if (m->offset() >= it->second) {
      open.erase(it);
      continue;
    }
    if (m->offset() >= it->second - 1) open.erase(it);
    if (scanned != nullptr) ++*scanned;
    if (keys == nullptr ||
        keys->contains(absl::string_view(static_cast<const char*>(m->key_pointer()), m->key_len()))) {
      out.push_back(FromRdMessage(*m));
    }
  }
  consumer->close();
  return out;
}

}  // namespace

absl::StatusOr<std::vector<Message>> ReadKeysInRanges(const Properties& properties,
                                                      const std::vector<OffsetRange>& ranges,
                                                      const absl::flat_hash_set<std::string>& keys,
                                                      absl::Duration timeout, int64_t* scanned) {
  return ReadRangesOfKeys(properties, ranges, &keys, timeout, scanned);
}

absl::StatusOr<std::vector<Message>> ReadRanges(const Properties& properties, const std::vector<OffsetRange>& ranges,
                                                absl::Duration timeout) {
  return ReadRangesOfKeys(properties, ranges, nullptr, timeout, nullptr);
}

absl::StatusOr<std::vector<int64_t>> CommittedOffsets(const Properties& properties,
                                                      const std::string& group,
                                                      const std::string& topic,
                                                      absl::Duration timeout) {
  auto count = PartitionCount(properties, topic, timeout);
  if (!count.ok()) return count.status();
  Properties props = properties;
  props["group.id"] = group;
  auto consumer = RdConsumer::Create(props, nullptr);
  if (!consumer.ok()) return consumer.status();
  auto* rd = static_cast<RdConsumer*>(consumer->get());
  std::vector<TopicPartition> tps;
  for (int p = 0; p < *count; ++p) tps.push_back({topic, p});
  auto rdtps = ToRd(tps);
  auto code = rd->raw()->committed(rdtps, Ms(timeout));
  std::vector<int64_t> out;
  for (auto* tp : rdtps) out.push_back(tp->offset() < 0 ? -1 : tp->offset());
  RdKafka::TopicPartition::destroy(rdtps);
  // Never joined the group, so closing leaves nothing behind.
  (*consumer)->Close();
  if (code != RdKafka::ERR_NO_ERROR) return FromErr(code, "committed offsets");
  return out;
}

absl::StatusOr<std::vector<TopicLag>> GroupLag(const Properties& properties, const std::string& group,
                                               const std::vector<std::string>& topics, absl::Duration timeout) {
  auto made = NewUnjoinedConsumer(properties, group, "lag reader");
  if (!made.ok()) return made.status();
  std::unique_ptr<RdKafka::KafkaConsumer> consumer = std::move(*made);
  absl::Time deadline = absl::Now() + timeout;
  std::vector<TopicLag> out;
  std::vector<TopicPartition> tps;
  for (const std::string& topic : topics) {
    auto count = ReadyPartitionCount(consumer.get(), topic, std::max(deadline - absl::Now(), absl::Milliseconds(1)));
    if (!count.ok()) {
      consumer->close();
      return count.status();
    }
    TopicLag t;
    t.topic = topic;
    for (int p = 0; p < *count; ++p) {
      t.partitions.push_back({p});
      tps.push_back({topic, p});
    }
    out.push_back(std::move(t));
  }
  auto rd = ToRd(tps);
  auto code = consumer->committed(rd, std::max(1, Ms(deadline - absl::Now())));
  absl::Status status = FromErr(code, "committed offsets of " + group);
  size_t i = 0;
  for (TopicLag& t : out) {
    for (PartitionLag& p : t.partitions) {
      int64_t committed = rd[i++]->offset();
      p.committed = committed < 0 ? -1 : committed;
      if (!status.ok()) continue;
      status = QueryPartitionWatermarks(consumer.get(), t.topic, p.partition, deadline, &p.low, &p.high);
      p.lag = std::max<int64_t>(0, p.high - (p.committed >= 0 ? p.committed : p.low));
    }
  }
  RdKafka::TopicPartition::destroy(rd);
  consumer->close();  // never joined: leaves nothing behind
  if (!status.ok()) return status;
  return out;
}

}  // namespace agentfleet
