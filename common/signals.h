// Process setup. Shutdown request: SIGTERM and SIGINT set a flag that service
// loops poll; SIGHUP sets another, a reload request. The flags are the one
// piece of global state the project has; a signal handler cannot reach
// anything else.
#pragma once

#include "absl/time/time.h"

namespace agentfleet {

// Installs handlers for SIGTERM and SIGINT. Call once from main().
void InstallShutdownHandlers();

// True once SIGTERM or SIGINT arrived (or RequestShutdown was called).
bool ShutdownRequested();

void RequestShutdown();

// SIGHUP asks for a config reload (the coordinator applies its spending
// limits). Install once from main(); TakeReloadRequest() is true once per
// request (several SIGHUPs before it is asked count as one).
void InstallReloadHandler();
bool TakeReloadRequest();

// Shutdown always ends: once a shutdown is requested, a background thread
// gives the process `bound` to exit on its own, then logs that it did not
// and ends it with _exit(3). What it had not committed is redone by its
// successor (at-least-once input, aborted transactions), so this loses
// nothing; it only keeps a broker that does not answer from holding a
// stopping process (and its pod) for minutes. Call once from main().
void StartShutdownWatchdog(absl::Duration bound);

// Raises the soft limit on open files to the hard limit: a worker holds one
// socket per HTTP call in flight, more than the usual soft limit of 1024.
void RaiseOpenFileLimit();

}  // namespace agentfleet
