// Triggers (config `triggers:`): the submission an event on a trigger topic
// starts. Pure: the coordinator produces it to the tasks topic.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agentfleet/v1/task.pb.h"
#include "config/config.h"

namespace agentfleet {

// The task an event starts: id "<trigger>/<value>" (the key, or the
// configured field: a string or an integer), the trigger's workflow and
// tenant, the input its template makes. InvalidArgument, saying why, for an
// event that is not JSON, has no usable id, or whose input is not an object.
[[nodiscard]] absl::StatusOr<v1::TaskSubmission> TriggeredSubmission(const TriggerConfig& trigger,
                                                                     absl::string_view key,
                                                                     absl::string_view payload);

}  // namespace agentfleet
