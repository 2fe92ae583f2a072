"""The service desk's records of customers, over hq_server.store and hq_server.access:

    policies   SLA policies as data: a contract's grade scheme mapped onto grades 1..5, the
               acknowledge / restore / on-site targets per grade, the calendar; the default
               policy (protocol.grades) for sites without a customer or contract policy
    records    customers, their contacts and policies: create, change, look up; which customer
               a site belongs to
    messages   the customer notifications' texts in the customer's language (zh, en)

Each module imports only modules listed above it. hq_server.tickets applies the policies.
"""
