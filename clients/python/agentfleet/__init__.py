"""Generated from proto/agentfleet/v1 (clients/python/generate.sh)."""
