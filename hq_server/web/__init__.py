"""The console: HQ's web pages for the support desk, in Simplified Chinese and English, served
by the HQ process under / beside the API (/api/v1).

    console    wiring: the pages' routers, static files, error pages (create_app calls it)
    auth       sessions, languages, roles, CSRF: the dependencies every page declares
    render     Jinja2 templates, the context every page gets, navigation entries
    i18n       catalogues (locale/*/LC_MESSAGES/messages.po), dates, numbers, durations
    live       the server-sent-events stream of changes
    pages/     one module per area: its routes, its navigation entry
    templates/ one folder per area; base.html is the layout
    static/    console.css, console.js, vendored htmx

Pages read and act through the same services as the API; docs/console.md says how to add a
page, a string and a translation.
"""
