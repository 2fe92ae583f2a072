"""StationWatch HQ: receives graded fault events from station agents, keeps alarms, opens tickets.

Spine: api (HTTP, auth, audit) -> ingest (events -> alarm transitions, flapping) -> tickets
(policy: maintenance windows, site outages, reopen window) -> ticket_clock / sla (deadlines on
site calendars) -> escalation (chains, timer rows) -> scheduler (one loop: windows, dead man's
switch, escalations, notify outbox) -> store (models, models_ops, db, migrations).
Engineers act on tickets through ticket_actions; users, passwords and the audit log live in
users, passwords and audit. `hq_server.app.create_app` builds the web app and
`hq_server.cli.run` is the `stationwatch hq` command.
"""
