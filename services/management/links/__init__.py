"""Links: create, read, change, delete; compiled and written through to Redis."""
