"""Management: qr."""
