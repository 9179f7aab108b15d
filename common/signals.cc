#include "common/signals.h"

#include <signal.h>
#include <sys/resource.h>

#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"

namespace agentfleet {
namespace {
std::atomic<bool> g_shutdown{false};
std::atomic<bool> g_reload{false};
extern "C" void OnSignal(int) { g_shutdown.store(true); }
extern "C" void OnHangup(int) { g_reload.store(true); }
}  // namespace

void InstallReloadHandler() {
  struct sigaction sa = {};
  sa.sa_handler = OnHangup;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGHUP, &sa, nullptr);
}

bool TakeReloadRequest() { return g_reload.exchange(false); }

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

void StartShutdownWatchdog(absl::Duration bound) {
  std::thread([bound] {
    while (!g_shutdown.load()) absl::SleepFor(absl::Milliseconds(100));
    absl::SleepFor(bound);
    Log(LogLevel::kError, "process", "shutdown did not finish in time; exiting",
        {{"bound", absl::FormatDuration(bound)}});
    _exit(3);
  }).detach();
}

}  // namespace agentfleet

namespace agentfleet {

void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace agentfleet
