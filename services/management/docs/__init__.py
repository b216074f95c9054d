"""The management API's own description: /openapi.json and the interactive /docs page."""
