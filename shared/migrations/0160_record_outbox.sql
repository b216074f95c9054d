-- The write-through's outbox: what a committed change still has to make true in Redis.
-- Rows are inserted in the transaction of the change itself, so a change can never be
-- committed without them; they are deleted once Redis has the records. A Redis outage,
-- a failed write or a crash between the commit and the write leaves them here, and the
-- management service's drainer writes them when Redis answers again.
-- Kinds (which columns are set):
--   link:      link_id                                        (compiled from Postgres)
--   domain:    domain_id                                      (compiled from Postgres)
--   tombstone: hostname, path_key, link_id, domain_id, version (the row is gone)
CREATE TABLE record_outbox (
    id         bigserial PRIMARY KEY,
    link_id    bigint,
    domain_id  bigint,
    hostname   text,
    path_key   text,
    version    bigint,
    queued_at  timestamptz NOT NULL DEFAULT now()
);
