// A reference run: one submission through TaskEngine with the simulated
// providers answering synchronously — the workflow as the distributed fleet
// must compute it, without Kafka. Integration tests compare the fleet's
// results with these.
#pragma once

#include "agentfleet/v1/task.pb.h"
#include "config/config.h"

namespace agentfleet::testing {

// The TaskResult the fleet must produce for `submission` (simulated
// providers only). Work items are answered in dispatch order.
v1::TaskResult RunLocally(const FleetConfig& config, const v1::TaskSubmission& submission);

}  // namespace agentfleet::testing
