// TaskEngine's fair queues: dispatches waiting for a provider quota or for
// room in an agent's max_in_flight (its workers busy), interactive before batch, and within a priority fair between tenants by
// estimated tokens (start-time fair queuing: a tenant's request starts where
// its previous one ended, or at the queue's virtual time if later, and the
// smallest start goes first; ties by arrival), served as the quota refills.
// A tenant with 20,000 waiting calls does not hold back one with 20: their
// turns interleave in proportion to the tenants' weights.
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/match.h"

#include "coordinator/task_engine.h"
#include "coordinator/task_engine_internal.h"

namespace agentfleet {

bool TaskEngine::TakeTurn(Task& task, size_t step, int fan, const std::string& key, int64_t tokens,
                          const std::function<bool()>& admit) {
  Instance& inst = task.steps[step].instances[task.steps[step].Index(fan)];
  int priority = task.priority == v1::PRIORITY_INTERACTIVE ? 0 : 1;
  if (inst.rate_seq != 0 && inst.extra().rate_key != key) {
    // Served by another queue (a quota) and now at this one (a window): a
    // new turn here; its old entry is stale.
    inst.rate_seq = 0;
    inst.mutable_extra().rate_tag = 0;
  }
  std::set<Waiter>& queue = rate_waiting_[key];
  if (inst.rate_seq != 0) queue.erase(Waiter{priority, inst.extra().rate_tag, inst.rate_seq, task.id(), step, fan});
  // Drop waiters whose task finished, moved, or that were dispatched another way.
  while (!queue.empty() && LiveWaiter(*queue.begin()) == nullptr) queue.erase(queue.begin());
  if (queue.empty()) {
    // Nobody waits: fairness starts afresh (and its state stays bounded).
    fair_.erase({key, 0});
    fair_.erase({key, 1});
  }
  if (inst.rate_seq == 0 && !queue.empty()) {
    inst.rate_seq = ++rate_seq_;
    inst.mutable_extra().rate_key = key;  // an instance holding a turn (rate_seq) knows its queue
    inst.mutable_extra().rate_tag = TurnFor(inst, key, priority, task.tenant, tokens);
  }
  Waiter me{priority, inst.extra().rate_tag, inst.rate_seq, task.id(), step, fan};
  bool someone_first = !queue.empty() && *queue.begin() < me;
  if (someone_first || !admit()) {
    if (!inst.waiting(Instance::Wait::kQuota)) {
      if (absl::StartsWith(key, "window:")) {
        ++stats_.window_waits;
        if (metrics_) metrics_->WindowWait(key.substr(7));
      } else {
        ++stats_.rate_waits;
        if (metrics_) metrics_->RateWait(key);
      }
    }
    if (inst.rate_seq == 0) {
      inst.rate_seq = ++rate_seq_;
      inst.mutable_extra().rate_key = key;
      inst.mutable_extra().rate_tag = TurnFor(inst, key, priority, task.tenant, tokens);
      me = Waiter{priority, inst.extra().rate_tag, inst.rate_seq, task.id(), step, fan};
    }
    inst.wait = Instance::Wait::kQuota;
    inst.mutable_extra().rate_tokens = tokens;
    inst.retry_at = absl::InfiniteFuture();
    inst.DisarmAttempt();
    queue.insert(me);
    UpdateRateTimer();
    return false;
  }
  inst.StopWaiting(Instance::Wait::kQuota);
  if (inst.rate_seq != 0) {
    // Served: the queue's virtual time moves to its start tag.
    auto clock = fair_.find({key, priority});
    if (clock != fair_.end()) clock->second.virtual_time = std::max(clock->second.virtual_time, inst.extra().rate_tag);
  }
  if (inst.rate_seq != 0) inst.mutable_extra().rate_tag = 0;
  inst.rate_seq = 0;
  if (queue.empty()) rate_waiting_.erase(key);
  return true;
}

double TaskEngine::FairTag(const std::string& key, int priority, const std::string& tenant, int64_t tokens) {
  FairClock& clock = fair_[{key, priority}];
  double& finish = clock.finish[tenant];
  const double start = std::max(clock.virtual_time, finish);
  finish = start + static_cast<double>(std::max<int64_t>(tokens, 1)) / config_->TenantWeight(tenant);
  return start;
}

double TaskEngine::TurnFor(Instance& inst, const std::string& key, int priority, const std::string& tenant,
                           int64_t tokens) {
  const uint64_t epoch = inst.extra().restored_epoch == 0 ? 0 : std::exchange(inst.mutable_extra().restored_epoch, 0);
  auto earliest = restored_turns_.find({key, priority, epoch});
  if (epoch == 0 || earliest == restored_turns_.end()) return FairTag(key, priority, tenant, tokens);
  FairClock& clock = fair_[{key, priority}];
  const double start = clock.virtual_time + std::max(0.0, inst.extra().restored_tag - earliest->second);
  double& finish = clock.finish[tenant];
  finish = std::max(finish, start + static_cast<double>(std::max<int64_t>(tokens, 1)) / config_->TenantWeight(tenant));
  return start;
}

TaskEngine::Instance* TaskEngine::LiveWaiter(const Waiter& waiter) {
  const auto& [p, tag, seq, id, st, f] = waiter;
  auto task = active_.find(id);
  if (task == active_.end() || st >= task->second->steps.size() || !task->second->steps[st].ValidFan(f)) return nullptr;
  Instance& inst = task->second->steps[st].instances[task->second->steps[st].Index(f)];
  return inst.waiting(Instance::Wait::kQuota) && inst.rate_seq == seq ? &inst : nullptr;
}

void TaskEngine::ServeRateQueues(Outbox* out) {
  for (auto it = rate_waiting_.begin(); it != rate_waiting_.end();) {
    std::string key = it->first;
    for (;;) {
      auto q = rate_waiting_.find(key);
      if (q == rate_waiting_.end() || q->second.empty()) break;
      auto [p, tag, seq, id, st, f] = *q->second.begin();
      if (LiveWaiter(*q->second.begin()) == nullptr) {
        q->second.erase(q->second.begin());
        continue;
      }
      Task& t = *active_.at(id);
      Dispatch(t, st, f, out);
      if (!t.finished) Touch(t);
      // Still at the head and waiting: the quota is empty for now. (Served
      // another way — the cache, a failure — its entry is stale and goes.)
      auto again = rate_waiting_.find(key);
      if (again != rate_waiting_.end() && !again->second.empty() && *again->second.begin() == Waiter{p, tag, seq, id, st, f} &&
          LiveWaiter(*again->second.begin()) != nullptr) {
        break;
      }
    }
    it = rate_waiting_.upper_bound(key);
    if (auto q = rate_waiting_.find(key); q != rate_waiting_.end() && q->second.empty()) rate_waiting_.erase(q);
  }
  UpdateRateTimer();
}

void TaskEngine::UpdateRateTimer() {
  rate_next_ = absl::InfiniteFuture();
  absl::Time now = clock_->Now();
  for (const auto& [key, queue] : rate_waiting_) {
    if (queue.empty()) continue;
    const Instance* head = LiveWaiter(*queue.begin());
    if (head == nullptr) {
      rate_next_ = now;  // a stale head to clear
      continue;
    }
    if (absl::StartsWith(key, "window:")) {
      // Ready once an attempt of the agent ends (window_freed_).
      if (auto agent = config_->agents.find(key.substr(7)); agent == config_->agents.end() ||
                                                           window_in_use(agent->first) < WindowLimit(agent->second)) {
        rate_next_ = now;
      }
      continue;
    }
    rate_next_ = std::min(rate_next_, rate_.ReadyAt(key, head->extra().rate_tokens, now));
  }
}

int64_t TaskEngine::WindowLimit(const AgentConfig& agent) const {
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(agent.max_in_flight * rate_.share())));
}

int64_t TaskEngine::window_in_use(const std::string& agent) const {
  auto it = windows_.find(agent);
  return it == windows_.end() ? 0 : it->second.in_use;
}

size_t TaskEngine::window_waiting(const std::string& agent) const {
  auto it = rate_waiting_.find(WindowKey(agent));
  return it == rate_waiting_.end() ? 0 : it->second.size();
}

size_t TaskEngine::rate_waiting() const {
  size_t n = 0;
  for (const auto& [key, queue] : rate_waiting_) n += queue.size();
  return n;
}

}  // namespace agentfleet
