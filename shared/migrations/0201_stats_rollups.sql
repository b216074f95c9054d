-- Click rollups (hourly, UTC), the raw click log and the unique-visitor sets.
-- No foreign keys to links/domains: the consumer must be able to count a click for a
-- link deleted a moment later, and FK checks would cost every write.
-- Raw click log: "last clicks" and the event_id dedup set (a replayed or duplicated
-- event hits the primary key and is not counted again). Rows older than the configured
-- retention are deleted by the stats service itself.
CREATE TABLE stats_clicks (
    event_id      uuid PRIMARY KEY,
    ts            timestamptz NOT NULL,
    link_id       bigint NOT NULL,
    domain_id     bigint NOT NULL,
    path          text NOT NULL,
    ip            text,
    user_agent    text,
    referer       text,
    country       text,
    region        text,
    city          text,
    browser       text,
    os            text,
    device        text,
    referer_host  text,
    social        text,
    utm_source    text,
    utm_medium    text,
    utm_campaign  text,
    bot           boolean NOT NULL,
    visitor       text,
    -- The combination key, so the batch statement can fold the rows it actually
    -- inserted into stats_facts (RETURNING only sees table columns).
    combo         bigint NOT NULL DEFAULT 0
);
CREATE INDEX stats_clicks_domain_ts_idx ON stats_clicks (domain_id, ts DESC);
-- Retention deletes by time; events arrive roughly in time order, so BRIN is enough.
CREATE INDEX stats_clicks_ts_brin ON stats_clicks USING brin (ts);

-- Totals per hour: charts and totalClicks/humanClicks.
CREATE TABLE stats_link_hourly (
    link_id       bigint NOT NULL,
    hour          timestamptz NOT NULL,
    domain_id     bigint NOT NULL,
    clicks        bigint NOT NULL,
    human_clicks  bigint NOT NULL,
    PRIMARY KEY (link_id, hour)
);
CREATE INDEX stats_link_hourly_domain_idx ON stats_link_hourly (domain_id, hour);

CREATE TABLE stats_domain_hourly (
    domain_id     bigint NOT NULL,
    hour          timestamptz NOT NULL,
    clicks        bigint NOT NULL,
    human_clicks  bigint NOT NULL,
    PRIMARY KEY (domain_id, hour)
);

-- One row per (domain, dimension, hour, value): the unfiltered domain breakdowns.
CREATE TABLE stats_domain_dims (
    domain_id  bigint NOT NULL,
    dim        text NOT NULL,
    hour       timestamptz NOT NULL,
    value      text NOT NULL,
    clicks     bigint NOT NULL,
    PRIMARY KEY (domain_id, dim, hour, value)
);

-- Every dimension together per hour: answers the include/exclude filters exactly
-- (a filter on one dimension with a breakdown by another) without the raw log.
-- Throughput: one fact row per (link, hour, combination of dimensions), keyed by a
-- 64-bit hash of the combination instead of a 15-column unique index, and no separate
-- per-link dimension rollup (a click wrote ~6 rows there): link breakdowns and every
-- filtered answer read stats_facts (by link through the key, by domain through
-- stats_facts_domain_idx). Unfiltered domain breakdowns stay on stats_domain_dims.
CREATE TABLE stats_facts (
    link_id       bigint NOT NULL,
    hour          timestamptz NOT NULL,
    combo         bigint NOT NULL,  -- services.stats.batch.combo_key of the columns below
    domain_id     bigint NOT NULL,
    country       text,
    region        text,
    city          text,
    browser       text,
    os            text,
    device        text,
    referer_host  text,
    social        text,
    utm_source    text,
    utm_medium    text,
    utm_campaign  text,
    bot           boolean NOT NULL,
    clicks        bigint NOT NULL,
    PRIMARY KEY (link_id, hour, combo)
);
CREATE INDEX stats_facts_domain_idx ON stats_facts (domain_id, hour);

-- Exact unique visitors: the set of visitor hashes per link and UTC day.
CREATE TABLE stats_link_visitors (
    link_id  bigint NOT NULL,
    day      date NOT NULL,
    visitor  text NOT NULL,
    PRIMARY KEY (link_id, day, visitor)
);
