"""Remote work for the agents of a site, over hq_server.access: the job queue handed out by long
poll (`queue`), recurring jobs run by APScheduler (`schedules`), inspection reports from
checklist results (`inspections`), configuration backups (`backups`) and HQ's own check that a
backup holds no secret in clear (`secret_check`)."""
