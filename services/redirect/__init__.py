"""The redirect edge: resolves short links from Redis and emits click events."""
