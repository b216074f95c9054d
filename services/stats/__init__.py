"""Stats: the click consumer (exactly once into Postgres) and the statistics API."""
