"""On-call duty: who is on duty when, and how each engineer is reached.

    rota.py      rotations, holidays, overrides and gaps computed over time (no I/O)
    teams.py     teams as stored: the team of a site, who is on duty now and next, gaps
    contacts.py  engineers' contact methods: channels in order (validated by hq_server.channels,
                 sealed with HQ's key), a language, failures in a row (unreachable)

A layer between `access` (users, the key that seals secrets) and `tickets`, which fills a
ticket's on-duty engineer from the rota when it opens and pages through the contacts.
"""
