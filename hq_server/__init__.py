"""StationWatch HQ: receives graded fault events from station agents, keeps alarms, opens tickets.

Packages by concept, in layers (lowest first). A module imports its own package and packages on
lower layers, never a higher one; packages on one layer do not import each other.

    core, channels   errors, clock, the stored vocabulary, settings, tokens and passwords;
                     the paging channels (both import nothing else of hq_server)
    store            engine, sessions and migrations, the SQLite writers' queue, bulk rows,
                     the tables (models/, one module per concept), Alembic revisions
    access           who may call: bearer tokens and principals, users, the login throttle,
                     the audit log, the key sealing webhook keys
    oncall           on-call duty: rotas over time (rotations, holidays, overrides, gaps), teams
                     and the team of a site, engineers' contact methods
    tickets          ticket records and history, the ticket book (policy over a batch), actions,
                     SLA calendars and deadlines, escalation, outages, maintenance windows,
                     paging (policies, repeats, rate limit, digests), notifications (outbox and
                     delivery)
    alarms, jobs     event intake and ingest (a service owning its transaction and retries),
                     alarm rules, flapping, the dead man's switch; the job queue, schedules
                     (APScheduler), inspections, config backups
    sites            sites, agent enrollment, enrolled agents (revoking or replacing one
                     releases its jobs; a heartbeat clears the dead man's switch)
    api              HTTP: routes/<resource>.py, schemas/<resource>.py, dependencies, errors
    (root)           app (create_app: one lifespan runs both schedulers), cli (`stationwatch
                     hq`), scheduler (the escalation loop over alarms and tickets), serving
                     (uvicorn), __main__

One event batch: api.routes.agent -> alarms.ingest.receive (intake, then ingest_batch in a
transaction, retried) -> tickets.book (records, deadlines, escalation, outage, maintenance)
-> tickets.paging (pages queued in the same transaction, sent as it commits) -> store.rows.
HQ imports nothing of the agent side but the shared `protocol` package.
"""
