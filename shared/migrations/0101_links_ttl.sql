-- Links whose ttl has passed are deleted by the management service's sweeper.
CREATE INDEX links_ttl_idx ON links(ttl) WHERE ttl IS NOT NULL;
