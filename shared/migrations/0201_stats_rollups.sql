-- Click rollups, the raw click log and the unique-visitor sets.
-- Three grains, all written by the consumer in the one statement of each batch
-- (services/stats/repository.py): per UTC hour (periods cut inside a UTC day: the local
-- days of other zones, hour charts), per UTC day (the whole days of a period) and all
-- time (periods holding everything). A domain answer over a long period reads whole days
-- from the daily tables and only the cut days' hours from the hourly ones
-- (services/stats/spans.py): what it reads does not grow with hours times links.
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

-- Every dimension together per link and hour: link breakdowns, every answer filtered by
-- path, and (summed over combinations) the link's hourly totals. One fact row per (link,
-- hour, combination of dimensions), keyed by a 64-bit hash of the combination instead
-- of a 15-column unique index.
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

-- A link's hourly totals are the sum of its facts: a view rather than one more row per
-- click to write (read by link, it is a range of the facts' primary key).
CREATE VIEW stats_link_hourly AS
SELECT link_id, hour, min(domain_id) AS domain_id, sum(clicks)::bigint AS clicks,
       coalesce(sum(clicks) FILTER (WHERE NOT bot), 0)::bigint AS human_clicks
FROM stats_facts GROUP BY link_id, hour;

-- Per link and UTC day: top links, link clicks and link charts over whole days.
CREATE TABLE stats_link_daily (
    link_id       bigint NOT NULL,
    day           date NOT NULL,
    domain_id     bigint NOT NULL,
    clicks        bigint NOT NULL,
    human_clicks  bigint NOT NULL,
    PRIMARY KEY (link_id, day)
);
CREATE INDEX stats_link_daily_domain_idx ON stats_link_daily (domain_id, day);

-- Per link, all time: the most clicked links of a domain over its whole history, and
-- the UTC days the link was clicked on (a multirange: consecutive days merge into one
-- range), which counts the distinct links clicked in a period in one pass over the
-- domain's links, without a row per link and day. Updated by every batch that clicks
-- the link: room on each page keeps those updates HOT (no index entry per update).
CREATE TABLE stats_link_totals (
    domain_id     bigint NOT NULL,
    link_id       bigint NOT NULL,
    clicks        bigint NOT NULL,
    human_clicks  bigint NOT NULL,
    days          datemultirange NOT NULL,
    PRIMARY KEY (domain_id, link_id)
) WITH (fillfactor = 70);

-- Domain totals per hour and per day: charts and totalClicks/humanClicks.
CREATE TABLE stats_domain_hourly (
    domain_id     bigint NOT NULL,
    hour          timestamptz NOT NULL,
    clicks        bigint NOT NULL,
    human_clicks  bigint NOT NULL,
    PRIMARY KEY (domain_id, hour)
) WITH (fillfactor = 70);

CREATE TABLE stats_domain_daily (
    domain_id     bigint NOT NULL,
    day           date NOT NULL,
    clicks        bigint NOT NULL,
    human_clicks  bigint NOT NULL,
    PRIMARY KEY (domain_id, day)
) WITH (fillfactor = 70);

-- The domain's facts per hour (its links' facts summed per combination): breakdowns of
-- cut days, value charts, and the filtered domain answers that do not filter by path,
-- in rows that grow with the combinations seen, not with links.
CREATE TABLE stats_domain_facts (
    domain_id     bigint NOT NULL,
    hour          timestamptz NOT NULL,
    combo         bigint NOT NULL,
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
    PRIMARY KEY (domain_id, hour, combo)
) WITH (fillfactor = 70);

-- One row per (domain, dimension, value) per UTC day and all time: the unfiltered
-- breakdowns of whole days and of everything.
CREATE TABLE stats_domain_dims_daily (
    domain_id  bigint NOT NULL,
    dim        text NOT NULL,
    day        date NOT NULL,
    value      text NOT NULL,
    clicks     bigint NOT NULL,
    PRIMARY KEY (domain_id, dim, day, value)
) WITH (fillfactor = 70);

CREATE TABLE stats_domain_dims_totals (
    domain_id  bigint NOT NULL,
    dim        text NOT NULL,
    value      text NOT NULL,
    clicks     bigint NOT NULL,
    PRIMARY KEY (domain_id, dim, value)
) WITH (fillfactor = 70);

-- Exact unique visitors: the set of visitor hashes per link and UTC day.
CREATE TABLE stats_link_visitors (
    link_id  bigint NOT NULL,
    day      date NOT NULL,
    visitor  text NOT NULL,
    PRIMARY KEY (link_id, day, visitor)
);
