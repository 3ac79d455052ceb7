-- 0023: this server's old verify keys, published in /_matrix/key/v2/server under
-- old_verify_keys after `edgehs rotate-key`, so that remote servers can still check what the
-- retired keys signed. The current key lives in the key file, not here.
-- https://spec.matrix.org/v1.19/server-server-api/#get_matrixkeyv2server
CREATE TABLE server_old_verify_keys (
    key_id TEXT PRIMARY KEY NOT NULL,   -- "ed25519:a_Xy3z"
    verify_key TEXT NOT NULL,           -- unpadded base64 public key
    expired_ts INTEGER NOT NULL         -- when it stopped being used, ms since the epoch
);
