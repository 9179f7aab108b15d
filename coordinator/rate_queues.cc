// TaskEngine's rate-limit queues: dispatches waiting for a provider quota,
// interactive before batch, and within a priority fair between tenants by
// estimated tokens (start-time fair queuing: a tenant's request starts where
// its previous one ended, or at the queue's virtual time if later, and the
// smallest start goes first; ties by arrival), served as the quota refills.
// A tenant with 20,000 waiting calls does not hold back one with 20: their
// turns interleave in proportion to the tenants' weights.
#include <algorithm>
#include <string>

#include "coordinator/task_engine.h"
#include "coordinator/task_engine_internal.h"

namespace agentfleet {

bool TaskEngine::TakeQuota(Task& task, size_t step, int fan, const std::string& key, int64_t tokens) {
  Instance& inst = task.steps[step].instances[task.steps[step].Index(fan)];
  int priority = task.submission.priority() == v1::PRIORITY_INTERACTIVE ? 0 : 1;
  std::set<Waiter>& queue = rate_waiting_[key];
  if (inst.rate_seq != 0) queue.erase(Waiter{priority, inst.rate_tag, inst.rate_seq, task.id(), step, fan});
  // Drop waiters whose task finished, moved, or that were dispatched another way.
  while (!queue.empty() && LiveWaiter(*queue.begin()) == nullptr) queue.erase(queue.begin());
  if (queue.empty()) {
    // Nobody waits: fairness starts afresh (and its state stays bounded).
    fair_.erase({key, 0});
    fair_.erase({key, 1});
  }
  if (inst.rate_seq == 0 && !queue.empty()) {
    inst.rate_seq = ++rate_seq_;
    inst.rate_tag = FairTag(key, priority, task.submission.tenant(), tokens);
  }
  Waiter me{priority, inst.rate_tag, inst.rate_seq, task.id(), step, fan};
  bool someone_first = !queue.empty() && *queue.begin() < me;
  if (someone_first || !rate_.TryTake(key, tokens, clock_->Now())) {
    if (!inst.waiting(Instance::Wait::kQuota)) {
      ++stats_.rate_waits;
      if (metrics_) metrics_->RateWait(key);
    }
    if (inst.rate_seq == 0) {
      inst.rate_seq = ++rate_seq_;
      inst.rate_tag = FairTag(key, priority, task.submission.tenant(), tokens);
      me = Waiter{priority, inst.rate_tag, inst.rate_seq, task.id(), step, fan};
    }
    inst.wait = Instance::Wait::kQuota;
    inst.rate_tokens = tokens;
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
    if (clock != fair_.end()) clock->second.virtual_time = std::max(clock->second.virtual_time, inst.rate_tag);
  }
  inst.rate_seq = 0;
  inst.rate_tag = 0;
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
    rate_next_ = std::min(rate_next_, rate_.ReadyAt(key, head->rate_tokens, now));
  }
}

size_t TaskEngine::rate_waiting() const {
  size_t n = 0;
  for (const auto& [key, queue] : rate_waiting_) n += queue.size();
  return n;
}

}  // namespace agentfleet
