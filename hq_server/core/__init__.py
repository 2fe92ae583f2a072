"""HQ's lowest layer, used by every other: errors, the clock, the stored vocabulary (statuses,
roles, history actions), settings, and security helpers (bearer tokens, password hashing and
policy). It imports nothing of hq_server."""
