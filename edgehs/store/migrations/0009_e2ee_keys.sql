-- 0009: end-to-end encryption keys (https://spec.matrix.org/v1.19/client-server-api/#end-to-end-encryption).

-- Device identity keys as the device uploaded them (POST /keys/upload), one object a device.
-- Signatures added later by others (POST /keys/signatures/upload) are in e2e_signatures.
CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- One-time keys, claimed (and deleted) oldest upload first: id is the upload order.
CREATE TABLE e2e_one_time_keys (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,                       -- e.g. signed_curve25519
    key_id TEXT NOT NULL,                          -- the part after "<algorithm>:"
    key_json TEXT NOT NULL,                        -- the key: a JSON string or key object
    UNIQUE (user_id, device_id, algorithm, key_id)
);

-- At most one fallback key per device and algorithm; handed out when no one-time key is left,
-- and then marked used (reported in /sync's device_unused_fallback_key_types until replaced).
CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- Cross-signing keys (POST /keys/device_signing/upload): the latest of each usage.
CREATE TABLE e2e_cross_signing_keys (
    user_id TEXT NOT NULL,
    usage TEXT NOT NULL,                           -- master, self_signing, user_signing
    public_key TEXT NOT NULL,                      -- unpadded base64 (the key id's version)
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, usage)
);

-- Signatures uploaded with POST /keys/signatures/upload: on a device's keys (target_key_id is
-- the device id) or on a master key (target_key_id is its public key).
CREATE TABLE e2e_signatures (
    signer_user_id TEXT NOT NULL,
    signer_key_id TEXT NOT NULL,                   -- e.g. ed25519:<public key or device id>
    target_user_id TEXT NOT NULL,
    target_key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (signer_user_id, signer_key_id, target_user_id, target_key_id)
);
CREATE INDEX e2e_signatures_target ON e2e_signatures (target_user_id, target_key_id);

-- A user's device list or cross-signing keys changed at a position of the shared stream:
-- /sync's device_lists.changed and /keys/changes for everyone sharing a room with them.
CREATE TABLE device_list_changes (
    stream_id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL
);
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, stream_id);

-- A deleted device takes its keys (and the signatures on them) with it.
CREATE TRIGGER e2e_keys_device_deleted AFTER DELETE ON devices
BEGIN
    DELETE FROM e2e_device_keys WHERE user_id = OLD.user_id AND device_id = OLD.device_id;
    DELETE FROM e2e_one_time_keys WHERE user_id = OLD.user_id AND device_id = OLD.device_id;
    DELETE FROM e2e_fallback_keys WHERE user_id = OLD.user_id AND device_id = OLD.device_id;
    DELETE FROM e2e_signatures
        WHERE target_user_id = OLD.user_id AND target_key_id = OLD.device_id;
END;
