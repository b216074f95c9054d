-- Rollups for domain answers filtered by the values of one dimension ("include countries
-- US"), the filter a dashboard applies when a visitor clicks one bar of a breakdown.
-- Without them such an answer sums the domain's facts over the period: on a month of a
-- 1,000,000-click domain about 330,000 fact rows to read and 47,000 to group, some 130 ms.
--
-- They are built per domain and UTC day from stats_facts by the stats service in the
-- background (services/stats/filter_rollups.py), not by the consumer's batch: a click
-- counts in up to 121 rows here (each ordered pair of its 11 dimensions, and one per
-- dimension), which would cost the batch several times what it costs now. A day's rows cover its hours up to
-- stats_filter_days.through: all of them once it has ended, its closed hours while it
-- is today (built again as hours close). An answer reads a day from them only while
-- the marker's clicks equal the clicks the domain's rollups hold for those hours now
-- (no click is missing: a late click makes the day stale until it is built again;
-- clearing statistics deletes the marker), and every other hour of the period (the
-- hour under way, a stale day, a day cut by the period) from the facts.
--
-- For each value of each dimension on the day: the clicks of every value of every other
-- dimension among the clicks with that value (by_dim, by_value), and ('', '') for all of
-- them. NULL values (unknown) have no rows: an include filter never matches them, and
-- breakdowns leave them out.
CREATE TABLE stats_domain_pairs_daily (
    domain_id     bigint NOT NULL,
    dim           text NOT NULL,
    value         text NOT NULL,
    day           date NOT NULL,
    by_dim        text NOT NULL,
    by_value      text NOT NULL,
    clicks        bigint NOT NULL,
    human_clicks  bigint NOT NULL,
    PRIMARY KEY (domain_id, dim, value, day, by_dim, by_value)
);

-- The links clicked with each value on the day, as a bitmap: bit i (of the bytes read
-- as one little-endian integer) is link first_link + i. The distinct links of a month
-- are then the OR of 30 rows of a few kilobytes, not a distinct count of every link id
-- of every day (some 45,000 on the month above, about 14 ms).
CREATE TABLE stats_domain_value_links (
    domain_id   bigint NOT NULL,
    dim         text NOT NULL,
    value       text NOT NULL,
    day         date NOT NULL,
    first_link  bigint NOT NULL,
    links       bytea NOT NULL,
    PRIMARY KEY (domain_id, dim, value, day)
);

-- The days built: up to which hour, and the clicks of those hours in the snapshot they
-- were built from.
CREATE TABLE stats_filter_days (
    domain_id  bigint NOT NULL,
    day        date NOT NULL,
    through    timestamptz NOT NULL,
    clicks     bigint NOT NULL,
    built_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain_id, day)
);
