// Process setup. Shutdown request: SIGTERM and SIGINT set a flag that service
// loops poll. The flag is the one piece of global state the project has; a
// signal handler cannot reach anything else.
#pragma once

namespace agentfleet {

// Installs handlers for SIGTERM and SIGINT. Call once from main().
void InstallShutdownHandlers();

// True once SIGTERM or SIGINT arrived (or RequestShutdown was called).
bool ShutdownRequested();

void RequestShutdown();

// Raises the soft limit on open files to the hard limit: a worker holds one
// socket per HTTP call in flight, more than the usual soft limit of 1024.
void RaiseOpenFileLimit();

}  // namespace agentfleet
