#include "audit/reference_run.h"

#include <deque>

#include "common/clock.h"
#include "common/error_codes.h"
#include "coordinator/task_engine.h"
#include "provider/simulated_provider.h"
#include "worker/execution.h"

namespace agentfleet {

std::optional<v1::TaskResult> RunLocally(const FleetConfig& config, const v1::TaskSubmission& submission) {
  if (const WorkflowConfig* wf = config.FindWorkflow(submission.workflow())) {
    for (const StepConfig& step : wf->steps) {
      const AgentConfig* agent = config.FindAgent(step.agent);
      if (agent == nullptr || agent->action || config.providers.at(agent->provider).is_http()) return std::nullopt;
    }
  }
  FakeClock clock;
  TaskEngine engine(&config, &clock);
  Outbox out;
  engine.Submit(submission, "", 0, &out).IgnoreError();
  std::deque<v1::WorkItem> queue;
  while (out.results.empty()) {
    for (auto& w : out.work) queue.push_back(std::move(w.item));
    out.work.clear();
    if (queue.empty()) {
      // Waiting on a backoff or a timeout: move time to it.
      absl::Time next = engine.NextTimer();
      if (next == absl::InfiniteFuture()) break;
      clock.Advance(std::max(next - clock.Now(), absl::ZeroDuration()));
      engine.Tick(&out);
      continue;
    }
    v1::WorkItem item = std::move(queue.front());
    queue.pop_front();
    auto request = MakeRequest(config, item);
    if (!request.ok()) {
      engine.OnEvent(MakeFailure(item, kInvalidWorkItem, std::string(request.status().message()), false, "local", clock.Now()), &out);
      continue;
    }
    const ProviderConfig& provider = config.providers.at(config.FindAgent(item.agent())->provider);
    SimulatedProvider sim(provider, nullptr);
    engine.OnEvent(MakeResult(config, item, sim.Respond(*request), "local", clock.Now()), &out);
  }
  if (out.results.empty()) return std::nullopt;
  return out.results.front().result;
}

}  // namespace agentfleet
