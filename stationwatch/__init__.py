"""The `stationwatch` command: one entry point for the agent, HQ, the simulator and the demo."""
