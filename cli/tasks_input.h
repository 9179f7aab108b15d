// Reading task submissions that users write: a JSON array, or JSON Lines (one
// object per line), each object in the protobuf JSON form of TaskSubmission.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agentfleet/v1/task.pb.h"

namespace agentfleet {

// Parses and validates every submission. InvalidArgument lists each bad one
// as "SOURCE:LINE: reason" (all of them, so a file is fixed in one pass).
[[nodiscard]] absl::StatusOr<std::vector<v1::TaskSubmission>> ParseTasks(const std::string& text,
                                                                         const std::string& source);

// `count` sample submissions for the example support workflow; ids are
// "<prefix>-<n>", contents derived from `seed`.
std::vector<v1::TaskSubmission> SampleTasks(int count, const std::string& prefix, uint64_t seed);

}  // namespace agentfleet
