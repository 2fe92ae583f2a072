"""Benchmarks: runnable scripts (not tests) measuring HQ ingest and the agent; see README.md."""
