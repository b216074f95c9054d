-- Platform surface of the management API: domains and API keys.
-- Listing a team's keys (GET /api/keys, `linkhop keys list`).
CREATE INDEX api_keys_team_idx ON api_keys(team_id);

-- The values the API accepts (Short.io's enums), enforced by the database too.
ALTER TABLE domains ADD CONSTRAINT domains_https_level_check
    CHECK (https_level IN ('none', 'redirect', 'hsts'));
ALTER TABLE domains ADD CONSTRAINT domains_state_check
    CHECK (state IN ('extra_records', 'not_registered', 'configured', 'not_configured',
                     'registration_pending', 'not_verified'));
