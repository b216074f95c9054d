-- Stats read paths: every answer that does not filter reads rows that grow with days,
-- links and dimension values, never with clicks per hour (services/stats/spans.py).
--
-- * stats_domain_dims_daily keeps each value's clicks per UTC hour of the day (h00..h23)
--   in its daily row: the unfiltered breakdowns of days cut by a local midnight, and the
--   value charts of any zone, read a few rows per day instead of every combination of
--   every hour. It replaces stats_domain_facts, whose rows grew with the combinations per
--   hour (about one per click in real traffic) and cost a fifth of each batch's write;
--   the filtered domain answers read stats_facts, which has as many rows in real traffic.
-- * stats_link_monthly: per link and month, the clicks of days 1..N for every N (c01..c31,
--   cumulative), so a link's clicks over any whole days of a month are one difference of
--   two columns: the most clicked links over 30 days read two rows per link, not 30.
--   It replaces stats_link_daily (its other readers, one link's own answers and charts,
--   read the link's facts, which they read for its breakdowns anyway): one wide row per
--   link and month costs a batch about what the two narrow ones did.
ALTER TABLE stats_domain_dims_daily
    ADD COLUMN h00 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h01 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h02 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h03 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h04 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h05 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h06 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h07 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h08 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h09 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h10 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h11 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h12 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h13 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h14 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h15 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h16 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h17 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h18 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h19 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h20 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h21 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h22 bigint NOT NULL DEFAULT 0,
    ADD COLUMN h23 bigint NOT NULL DEFAULT 0;

UPDATE stats_domain_dims_daily d SET h00 = x.h00, h01 = x.h01, h02 = x.h02, h03 = x.h03, h04 = x.h04, h05 = x.h05, h06 = x.h06, h07 = x.h07, h08 = x.h08, h09 = x.h09, h10 = x.h10, h11 = x.h11, h12 = x.h12, h13 = x.h13, h14 = x.h14, h15 = x.h15, h16 = x.h16, h17 = x.h17, h18 = x.h18, h19 = x.h19, h20 = x.h20, h21 = x.h21, h22 = x.h22, h23 = x.h23
FROM (
    SELECT domain_id, day, dim, value,
           coalesce(sum(clicks) FILTER (WHERE hr = 0), 0) AS h00,
           coalesce(sum(clicks) FILTER (WHERE hr = 1), 0) AS h01,
           coalesce(sum(clicks) FILTER (WHERE hr = 2), 0) AS h02,
           coalesce(sum(clicks) FILTER (WHERE hr = 3), 0) AS h03,
           coalesce(sum(clicks) FILTER (WHERE hr = 4), 0) AS h04,
           coalesce(sum(clicks) FILTER (WHERE hr = 5), 0) AS h05,
           coalesce(sum(clicks) FILTER (WHERE hr = 6), 0) AS h06,
           coalesce(sum(clicks) FILTER (WHERE hr = 7), 0) AS h07,
           coalesce(sum(clicks) FILTER (WHERE hr = 8), 0) AS h08,
           coalesce(sum(clicks) FILTER (WHERE hr = 9), 0) AS h09,
           coalesce(sum(clicks) FILTER (WHERE hr = 10), 0) AS h10,
           coalesce(sum(clicks) FILTER (WHERE hr = 11), 0) AS h11,
           coalesce(sum(clicks) FILTER (WHERE hr = 12), 0) AS h12,
           coalesce(sum(clicks) FILTER (WHERE hr = 13), 0) AS h13,
           coalesce(sum(clicks) FILTER (WHERE hr = 14), 0) AS h14,
           coalesce(sum(clicks) FILTER (WHERE hr = 15), 0) AS h15,
           coalesce(sum(clicks) FILTER (WHERE hr = 16), 0) AS h16,
           coalesce(sum(clicks) FILTER (WHERE hr = 17), 0) AS h17,
           coalesce(sum(clicks) FILTER (WHERE hr = 18), 0) AS h18,
           coalesce(sum(clicks) FILTER (WHERE hr = 19), 0) AS h19,
           coalesce(sum(clicks) FILTER (WHERE hr = 20), 0) AS h20,
           coalesce(sum(clicks) FILTER (WHERE hr = 21), 0) AS h21,
           coalesce(sum(clicks) FILTER (WHERE hr = 22), 0) AS h22,
           coalesce(sum(clicks) FILTER (WHERE hr = 23), 0) AS h23
    FROM (SELECT f.domain_id, (f.hour AT TIME ZONE 'UTC')::date AS day,
                 extract(hour FROM f.hour AT TIME ZONE 'UTC')::int AS hr, x.dim, x.value,
                 f.clicks
          FROM stats_domain_facts f
          CROSS JOIN LATERAL (VALUES ('country', f.country), ('region', f.region),
              ('city', f.city), ('browser', f.browser), ('os', f.os), ('device', f.device),
              ('referer', f.referer_host), ('social', f.social),
              ('utm_source', f.utm_source), ('utm_medium', f.utm_medium),
              ('utm_campaign', f.utm_campaign)) AS x(dim, value)
          WHERE x.value IS NOT NULL) v
    GROUP BY domain_id, day, dim, value
) x
WHERE d.domain_id = x.domain_id AND d.day = x.day AND d.dim = x.dim AND d.value = x.value;

DROP TABLE stats_domain_facts;

CREATE TABLE stats_link_monthly (
    domain_id  bigint NOT NULL,
    month      date NOT NULL,  -- the first day of the UTC month
    link_id    bigint NOT NULL,
    c01 bigint NOT NULL,
    c02 bigint NOT NULL,
    c03 bigint NOT NULL,
    c04 bigint NOT NULL,
    c05 bigint NOT NULL,
    c06 bigint NOT NULL,
    c07 bigint NOT NULL,
    c08 bigint NOT NULL,
    c09 bigint NOT NULL,
    c10 bigint NOT NULL,
    c11 bigint NOT NULL,
    c12 bigint NOT NULL,
    c13 bigint NOT NULL,
    c14 bigint NOT NULL,
    c15 bigint NOT NULL,
    c16 bigint NOT NULL,
    c17 bigint NOT NULL,
    c18 bigint NOT NULL,
    c19 bigint NOT NULL,
    c20 bigint NOT NULL,
    c21 bigint NOT NULL,
    c22 bigint NOT NULL,
    c23 bigint NOT NULL,
    c24 bigint NOT NULL,
    c25 bigint NOT NULL,
    c26 bigint NOT NULL,
    c27 bigint NOT NULL,
    c28 bigint NOT NULL,
    c29 bigint NOT NULL,
    c30 bigint NOT NULL,
    c31 bigint NOT NULL,
    PRIMARY KEY (domain_id, month, link_id)
) WITH (fillfactor = 70);

INSERT INTO stats_link_monthly
SELECT domain_id, date_trunc('month', day)::date, link_id,
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 1), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 2), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 3), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 4), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 5), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 6), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 7), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 8), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 9), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 10), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 11), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 12), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 13), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 14), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 15), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 16), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 17), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 18), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 19), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 20), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 21), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 22), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 23), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 24), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 25), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 26), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 27), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 28), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 29), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 30), 0),
       coalesce(sum(clicks) FILTER (WHERE extract(day FROM day) <= 31), 0)
FROM stats_link_daily GROUP BY domain_id, date_trunc('month', day)::date, link_id;

DROP TABLE stats_link_daily;

-- "Last clicks" of one link: newest first along the link's own clicks, not along every
-- click of its domain (for a link clicked once a day, 50 clicks were 50 days of them).
CREATE INDEX stats_clicks_link_ts_idx ON stats_clicks (link_id, ts DESC);
