"""Alarms, over hq_server.tickets: reading an agent's event batch one event at a time
(`intake`), the alarm rules (`rules`, pure), flap detection (`flapping`), ingest as a service
that owns its transaction and retry loop (`ingest`), and HQ's dead man's switch (`deadman`)."""
