-- Throughput: one fact row per (link, hour, combination of dimensions), keyed by a
-- 64-bit hash of the combination instead of a 15-column unique index, and no separate
-- per-link dimension rollup (a click wrote ~6 rows there): link breakdowns and every
-- filtered answer read stats_facts (by link through the key, by domain through
-- stats_facts_domain_idx). Unfiltered domain breakdowns stay on stats_domain_dims.
DROP TABLE stats_link_dims;
DROP TABLE stats_facts;

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

-- The raw row carries its combination key so the batch statement can fold the rows it
-- actually inserted into stats_facts (RETURNING only sees table columns).
ALTER TABLE stats_clicks ADD COLUMN combo bigint NOT NULL DEFAULT 0;
