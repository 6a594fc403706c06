"""The local side of crq (engine, sandbox, CLI). Never deployed; nothing under src/ imports it."""
