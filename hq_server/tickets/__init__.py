"""Fault tickets and their after-sales process, over hq_server.store and hq_server.access:

    history          a ticket's history entries
    sla              response deadlines on working-time calendars (pure computation)
    escalation       escalation chains copied onto tickets, each escalation's next step
    deadlines        a ticket's SLA clock: its site's calendar, pauses, stored deadlines
    records          ticket numbers, titles, lookups, opening one ticket
    policy           alarm transitions and the policy's settings (what ingest hands over)
    maintenance      maintenance windows holding alarms
    outage           site-wide outages: many alarms under one ticket
    actions          what engineers do to tickets (acknowledge ... reopen)
    book             the ticket policy applied to a batch of alarm transitions
    webhook_targets  where webhooks may go (public addresses only, unless allowed)
    notify           the notification outbox and its delivery (webhooks, e-mail)

Each module imports only modules listed above it.
"""
