#include "coordinator/batch_committer.h"

#include "common/log.h"

namespace agentfleet {

uint64_t BatchCommitter::Begin() {
  absl::MutexLock lock(&mu_);
  batches_.push_back(Batch{next_id_, 0, false, {}});
  return next_id_++;
}

BatchCommitter::Batch* BatchCommitter::Find(uint64_t id) {
  if (batches_.empty() || id < batches_.front().id) return nullptr;
  size_t index = id - batches_.front().id;
  return index < batches_.size() ? &batches_[index] : nullptr;
}

DeliveryCallback BatchCommitter::Track(uint64_t id) {
  {
    absl::MutexLock lock(&mu_);
    if (Batch* b = Find(id)) ++b->pending;
  }
  return [this, id](const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    if (!status.ok()) {
      if (error_.ok()) error_ = status;
      return;
    }
    if (Batch* b = Find(id)) --b->pending;
    Drain();
  };
}

void BatchCommitter::Seal(uint64_t id, Offsets offsets) {
  absl::MutexLock lock(&mu_);
  if (Batch* b = Find(id)) {
    b->sealed = true;
    b->offsets = std::move(offsets);
  }
  Drain();
}

void BatchCommitter::Drain() {
  // After a failure nothing more is stored: the process restarts from the
  // last stored offsets and redoes the failed batch.
  if (!error_.ok()) return;
  Offsets done;
  while (!batches_.empty() && batches_.front().sealed && batches_.front().pending == 0) {
    for (const auto& [tp, offset] : batches_.front().offsets) done[tp] = offset;
    batches_.pop_front();
  }
  for (const auto& [tp, offset] : done) {
    absl::Status s = consumer_->StoreOffset(tp.first, tp.second, offset);
    if (!s.ok()) {
      Log(LogLevel::kDebug, "coordinator", "offset not stored (partition revoked)", {{"error", s.message()}});
    }
  }
}

absl::Status BatchCommitter::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

size_t BatchCommitter::open_batches() const {
  absl::MutexLock lock(&mu_);
  return batches_.size();
}

bool BatchCommitter::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return batches_.empty() || !error_.ok(); };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout) && error_.ok();
}

}  // namespace agentfleet
