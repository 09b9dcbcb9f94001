"""The staff web console: server-rendered pages (Jinja2 + htmx) over the API's services."""
