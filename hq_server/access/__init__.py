"""Who may call HQ: bearer tokens resolved to principals and API tokens (`auth`), users and
their passwords (`users`), the login throttle (`throttle`), the audit log (`audit`), and the
key that seals webhook keys at rest (`secretbox`). It imports only hq_server.core and
hq_server.store."""
