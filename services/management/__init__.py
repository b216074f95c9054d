"""Management API: links, domains, keys, targeting, QR, bulk; Short.io-compatible."""
