"""linkhop's three services (redirect, management, stats) and the ``linkhop`` CLI."""
