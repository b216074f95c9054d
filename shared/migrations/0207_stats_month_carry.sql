-- Month carry: a link's row of a month in stats_link_monthly also holds the previous
-- month's cumulative day columns (p01..p31, a copy of that month's c01..c31), so that
-- the clicks of whole days across two months (last30 always, last7 and week at the
-- start of a month) are one row per link: c<last> + p<last> - p<first - 1>. Without
-- the copy, the most clicked links over 30 days read two rows per link and join them
-- on the link (a 10,000-link domain: some 20,000 rows and a hash join, 9-14 ms).
--
-- The copy is made by the stats service in the background (services/stats/month_carry.py),
-- not by the consumer's batch: the previous month's rows rarely change once it has
-- ended (a late click, a cleared link), so one copy a month serves every answer, while
-- the batch would write every click twice. The copy also gives every link clicked in
-- the previous month a row in the month (all c columns 0 until it is clicked).
--
-- stats_month_carry marks the copy of one domain and month with the clicks of the
-- domain's previous month it holds (stats_domain_daily, read in the copy's snapshot).
-- An answer reads the copy only while that equals the clicks of the previous month the
-- rollups hold now (a late click makes it stale until it is copied again; clearing a
-- link's or a domain's statistics deletes the marker), else the two months' rows.
ALTER TABLE stats_link_monthly
    ADD COLUMN p01 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p02 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p03 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p04 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p05 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p06 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p07 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p08 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p09 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p10 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p11 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p12 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p13 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p14 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p15 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p16 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p17 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p18 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p19 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p20 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p21 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p22 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p23 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p24 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p25 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p26 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p27 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p28 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p29 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p30 bigint NOT NULL DEFAULT 0,
    ADD COLUMN p31 bigint NOT NULL DEFAULT 0;

CREATE TABLE stats_month_carry (
    domain_id  bigint NOT NULL,
    month      date NOT NULL,  -- the month whose rows hold the previous month's columns
    clicks     bigint NOT NULL,  -- the domain's clicks of the previous month they hold
    built_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain_id, month)
);
