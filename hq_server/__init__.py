"""StationWatch HQ: receives graded fault events from station agents, keeps alarms, opens tickets.

Spine: api (HTTP, auth) -> ingest (events -> alarm transitions) -> tickets (policy, SLA deadlines)
-> store (models, db, migrations). `hq_server.app.create_app` builds the web app and
`hq_server.cli.run` is the `stationwatch hq` command.
"""
