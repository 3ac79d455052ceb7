-- 0006: application services registered at run time through the legacy (2015)
-- POST /_matrix/appservice/v1/register. Registrations listed in app_service_config_files are
-- read from their files at every start and never stored here; on an id or as_token clash the
-- file wins and the row is skipped (with a warning).

CREATE TABLE appservices (
    id TEXT PRIMARY KEY,                           -- the registration's id
    as_token TEXT NOT NULL UNIQUE,                 -- the key a legacy re-registration updates by
    registration TEXT NOT NULL,                    -- JSON: the registration in Synapse's format
    created_ts INTEGER NOT NULL,
    updated_ts INTEGER NOT NULL
);
