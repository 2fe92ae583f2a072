"""HQ's HTTP API over the domain packages (alarms, jobs, sites, tickets, access): the routes
(`routes/<resource>.py`) and their models (`schemas/<resource>.py`), the dependencies
(database, clock, settings, bearer authentication; `deps`), bounded and gzip-aware request bodies
(`body`, `jsonbody`), HQ errors mapped to statuses and the OpenAPI error responses (`errors`),
row lookups (`lookup`), and two middlewares: the audit log (`audit`) and trusted proxies
(`forwarded`). Nothing below imports it; hq_server.app composes it."""
