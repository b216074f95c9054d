-- Stats: the consumed Kafka positions, stored with the data they produced. Each batch's
-- rollups, raw clicks and next offsets are written in one transaction, so a crash can
-- neither lose nor double-count a click (the rollup tables are in 0201_stats_rollups.sql).
CREATE TABLE stats_offsets (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    partition       integer NOT NULL,
    next_offset     bigint NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);

