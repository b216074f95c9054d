-- Links: indexes behind the management API's listings and lookups.
-- Keyset pagination of one folder of a domain (GET /api/links?folderId=...).
CREATE INDEX links_domain_folder_created_idx ON links(domain_id, folder_id, created_at, id);
-- Folders of a domain (GET /links/folders/{domainId}).
CREATE INDEX folders_domain_idx ON folders(domain_id, id);
