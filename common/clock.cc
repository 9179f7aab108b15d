#include "common/clock.h"

namespace agentfleet {

SystemClock* SystemClock::Get() {
  static SystemClock* clock = new SystemClock();
  return clock;
}

}  // namespace agentfleet
