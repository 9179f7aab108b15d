// Process-wide shutdown request: SIGTERM and SIGINT set a flag that service
// loops poll. The flag is the one piece of global state the project has; a
// signal handler cannot reach anything else.
#pragma once

namespace agentfleet {

// Installs handlers for SIGTERM and SIGINT. Call once from main().
void InstallShutdownHandlers();

// True once SIGTERM or SIGINT arrived (or RequestShutdown was called).
bool ShutdownRequested();

void RequestShutdown();

}  // namespace agentfleet
