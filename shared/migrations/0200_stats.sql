-- Stats skeleton: per-link totals plus the consumed positions, written in one
-- transaction per batch so a crash can neither lose nor double-count a click.
CREATE TABLE stats_offsets (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    partition       integer NOT NULL,
    next_offset     bigint NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);

CREATE TABLE stats_link_totals (
    link_id       bigint PRIMARY KEY,
    domain_id     bigint NOT NULL,
    total_clicks  bigint NOT NULL DEFAULT 0
);
