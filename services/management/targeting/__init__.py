"""Management: targeting."""
