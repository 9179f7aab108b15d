// A reference run: one submission through TaskEngine with the simulated
// providers answering synchronously — the workflow as the distributed fleet
// must compute it, without Kafka. `agentfleet audit --verify` and the
// integration tests compare the fleet's results with it.
#pragma once

#include <optional>

#include "agentfleet/v1/task.pb.h"
#include "config/config.h"

namespace agentfleet {

// The TaskResult the fleet must produce for `submission`, if every agent of
// its workflow uses a simulated provider (nullopt otherwise). Work items are
// answered in dispatch order; time moves to each timer.
std::optional<v1::TaskResult> RunLocally(const FleetConfig& config, const v1::TaskSubmission& submission);

}  // namespace agentfleet
