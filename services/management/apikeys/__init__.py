"""Management: apikeys."""
