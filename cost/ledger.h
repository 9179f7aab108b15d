// The cost ledger's entry for a finished task: what the task itself spent
// (its child tasks have entries of their own), line by line per agent and
// model, with what the result cache saved. Written by the coordinator in the
// transaction that publishes the result, so the ledger and the results agree
// to the cent.
#pragma once

#include "agentfleet/v1/task.pb.h"

namespace agentfleet {

// `children` is the part of the result's usage that its child tasks spent.
v1::CostEntry CostEntryOf(const v1::TaskResult& result, const v1::Usage& children);

// The line of spend no step summary holds: attempts a re-plan abandoned, or
// a result too large to publish whose steps were dropped.
inline constexpr char kUnattributedLine[] = "(unattributed)";

}  // namespace agentfleet
