// The coordinator's handling of what its topics bring, past the decoder: a
// sequence of records, each a submission or a worker event, decoded and
// applied to a task engine running the shipped example config, with the clock
// moving between records. Unknown workflows and agents, negative or absurd
// budgets, stale and forged events must end in rejections, DLQ reasons or
// ignored events, never a crash; every task the engine finishes has exactly
// one result.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "codec/codec.h"
#include "common/clock.h"
#include "config/config.h"
#include "coordinator/task_engine.h"

namespace {

const agentfleet::FleetConfig& Config() {
  static const agentfleet::FleetConfig* config = [] {
    auto c = agentfleet::LoadConfigFile(std::string(AGENTFLEET_SOURCE_DIR) + "/examples/support.yaml");
    if (!c.ok()) __builtin_trap();
    return new agentfleet::FleetConfig(*c);
  }();
  return *config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace agentfleet;
  FakeClock clock(absl::FromUnixSeconds(1700000000));
  TaskEngine engine(&Config(), &clock);
  Outbox out;
  // Records: [kind][length (2 bytes)][payload].
  for (size_t i = 0; i + 3 <= size;) {
    uint8_t kind = data[i];
    size_t length = std::min<size_t>(data[i + 1] | (data[i + 2] << 8), size - i - 3);
    absl::string_view payload(reinterpret_cast<const char*>(data) + i + 3, length);
    i += 3 + length;
    if (kind & 1) {
      auto event = Decode<v1::WorkEvent>(payload, {});
      if (event.ok()) engine.OnEvent(*event, &out);
    } else {
      auto submission = Decode<v1::TaskSubmission>(payload, {});
      // One partition: Kafka puts a task id on one partition only.
      if (submission.ok()) (void)engine.Submit(*submission, "", 0, &out);
    }
    clock.Advance(absl::Milliseconds(kind * 97));
    engine.Tick(&out);
  }
  clock.Advance(absl::Hours(2));
  engine.Tick(&out);
  std::set<std::string> finished;
  for (const auto& r : out.results) {
    if (!finished.insert(r.result.task_id()).second) __builtin_trap();  // a second result
  }
  return 0;
}
