"""Fault tickets and their after-sales process, over hq_server.store, hq_server.access and
hq_server.customers (the contracts' SLA policies):

    history          a ticket's history entries
    sla              response deadlines on working-time calendars (pure computation)
    webhook_targets  where webhooks may go (public addresses only, unless allowed)
    notify           the notification outbox and its delivery (webhooks, e-mail)
    escalation       escalation chains copied onto tickets, each escalation's next step, a step
                     taken (by the scheduler, or at once at the customer's request)
    deadlines        a ticket's SLA clock: its contract policy, calendar, pauses, stored
                     deadlines (acknowledge, restore, on site)
    customer_notify  the customer's contacts told of acknowledged and resolved faults
    records          ticket numbers, titles, lookups, opening one ticket
    policy           alarm transitions and the policy's settings (what ingest hands over)
    maintenance      maintenance windows holding alarms
    outage           site-wide outages: many alarms under one ticket
    actions          what engineers do to tickets (acknowledge ... reopen, regrade, escalate
                     now, dispatch, plan, the customer's confirmation)
    book             the ticket policy applied to a batch of alarm transitions
    manual           tickets opened by people (phone, fax, e-mail, web, on site)

Each module imports only modules listed above it.
"""
