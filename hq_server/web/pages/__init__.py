"""The console's pages, one module per area, each with its `router` (and its navigation
entries, added with hq_server.web.render.navigation). hq_server.web.console includes them in the
order of PAGES; add a new module there (docs/console.md)."""
