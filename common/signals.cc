#include "common/signals.h"

#include <signal.h>
#include <sys/resource.h>

#include <atomic>

namespace agentfleet {
namespace {
std::atomic<bool> g_shutdown{false};
extern "C" void OnSignal(int) { g_shutdown.store(true); }
}  // namespace

void InstallShutdownHandlers() {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool ShutdownRequested() { return g_shutdown.load(); }

void RequestShutdown() { g_shutdown.store(true); }

}  // namespace agentfleet

namespace agentfleet {

void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace agentfleet
