-- Core model: teams own domains and API keys; links live on domains.
-- Version numbers for the Redis records come from one global sequence, so a record
-- written later always carries a larger version than anything written before it,
-- even when a path is deleted and re-created by another link.
CREATE SEQUENCE record_version_seq;

CREATE TABLE teams (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE domains (
    id                  bigserial PRIMARY KEY,
    team_id             bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    hostname            text NOT NULL UNIQUE,          -- punycode, lower case
    unicode_hostname    text NOT NULL,
    state               text NOT NULL DEFAULT 'configured',
    link_type           text NOT NULL DEFAULT 'random'
        CHECK (link_type IN ('increment','random','secure','four-char','eight-char','ten-char')),
    case_sensitive      boolean NOT NULL DEFAULT false,
    hide_referer        boolean NOT NULL DEFAULT false,
    hide_visitor_ip     boolean NOT NULL DEFAULT false,
    https_level         text NOT NULL DEFAULT 'none',
    robots              text NOT NULL DEFAULT 'allow' CHECK (robots IN ('allow','disallow','noindex')),
    cloaking            boolean NOT NULL DEFAULT false,
    redirect_type       smallint NOT NULL DEFAULT 302 CHECK (redirect_type IN (301,302,307,308)),
    root_redirect       text,
    not_found_redirect  text,
    webhook_url         text,
    increment_counter   bigint NOT NULL DEFAULT 0,
    record_version      bigint NOT NULL DEFAULT nextval('record_version_seq'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX domains_team_idx ON domains(team_id);

CREATE TABLE api_keys (
    id           bigserial PRIMARY KEY,
    team_id      bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    prefix       text NOT NULL UNIQUE,      -- shown in listings; never enough to authenticate
    secret_hash  bytea NOT NULL,            -- sha256 of the whole key; the key itself is never stored
    kind         text NOT NULL CHECK (kind IN ('private','public')),
    domain_id    bigint REFERENCES domains(id) ON DELETE CASCADE,  -- NULL: all the team's domains
    description  text,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE folders (
    id          bigserial PRIMARY KEY,
    id_string   text NOT NULL UNIQUE,
    domain_id   bigint NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE links (
    id              bigserial PRIMARY KEY,
    id_string       text NOT NULL UNIQUE,
    domain_id       bigint NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    team_id         bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    owner_key_id    bigint REFERENCES api_keys(id) ON DELETE SET NULL,
    folder_id       bigint REFERENCES folders(id) ON DELETE SET NULL,
    path            text NOT NULL,
    path_key        text NOT NULL,          -- path, lower-cased when the domain is case-insensitive
    original_url    text NOT NULL,
    title           text,
    tags            text[] NOT NULL DEFAULT '{}',
    expires_at      timestamptz,
    expired_url     text,
    password_hash   text,                   -- scrypt; the password itself is never stored
    redirect_type   smallint CHECK (redirect_type IN (301,302,307,308)),
    clicks_limit    integer CHECK (clicks_limit > 0),
    android_url     text,
    iphone_url      text,
    split_url       text,
    split_percent   smallint CHECK (split_percent BETWEEN 1 AND 100),
    utm_source      text,
    utm_medium      text,
    utm_campaign    text,
    utm_term        text,
    utm_content     text,
    skip_qs         boolean NOT NULL DEFAULT false,
    cloaking        boolean NOT NULL DEFAULT false,
    archived        boolean NOT NULL DEFAULT false,
    source          text NOT NULL DEFAULT 'api',
    ttl             timestamptz,            -- Short.io's ttl: the link is deleted after this time
    record_version  bigint NOT NULL DEFAULT nextval('record_version_seq'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, path_key)
);
CREATE INDEX links_domain_created_idx ON links(domain_id, created_at, id);
CREATE INDEX links_domain_url_idx ON links(domain_id, md5(original_url));

CREATE TABLE link_countries (
    link_id      bigint NOT NULL REFERENCES links(id) ON DELETE CASCADE,
    country      char(2) NOT NULL,
    original_url text NOT NULL,
    PRIMARY KEY (link_id, country)
);

CREATE TABLE link_regions (
    link_id      bigint NOT NULL REFERENCES links(id) ON DELETE CASCADE,
    country      char(2) NOT NULL,
    region       text NOT NULL,              -- ISO 3166-2 code, e.g. 'US-CA'
    original_url text NOT NULL,
    PRIMARY KEY (link_id, country, region)
);
