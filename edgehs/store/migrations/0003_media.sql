-- 0003: the media repository. Files live content-addressed under media_store_path/sha256.

CREATE TABLE media (
    media_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    content_type TEXT,
    upload_name TEXT,
    size INTEGER,
    sha256 TEXT,                                   -- NULL while created but not yet uploaded
    created_ts INTEGER NOT NULL,
    unused_expires_at INTEGER                      -- async upload: deadline for the bytes
);

CREATE TABLE media_thumbnails (
    media_id TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    method TEXT NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (media_id, width, height, method, content_type)
);
