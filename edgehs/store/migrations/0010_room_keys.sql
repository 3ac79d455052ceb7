-- 0010: server-side key backups (https://spec.matrix.org/v1.19/client-server-api/#server-side-key-backups),
-- and what a device deletion or an account deactivation removes beyond devices and tokens.

-- Backup versions of a user (POST /room_keys/version). version counts up per user and is never
-- reused: a deleted version keeps its row with deleted = 1, so that DELETE of it again succeeds
-- and a client's stale version number can never name a newer backup. The current backup is the
-- user's highest version that is not deleted. etag changes with every change to its keys.
CREATE TABLE room_key_backup_versions (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    algorithm TEXT NOT NULL,                       -- e.g. m.megolm_backup.v1.curve25519-aes-sha2
    auth_data TEXT NOT NULL,                       -- JSON object, algorithm-dependent
    etag INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
);

-- One backed-up megolm session key per (backup version, room, session); which of two uploads
-- of a session is kept follows the spec's rules (service/room_keys.py: should_replace).
CREATE TABLE room_key_backup_sessions (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_message_index INTEGER NOT NULL,
    forwarded_count INTEGER NOT NULL,
    is_verified INTEGER NOT NULL,
    session_data TEXT NOT NULL,                    -- JSON object, encrypted by the client
    PRIMARY KEY (user_id, version, room_id, session_id)
);

-- A deleted device (logout, DELETE /devices, POST /delete_devices, deactivation) takes the
-- pushers it set with it: nobody would read the notifications on that device any more.
CREATE TRIGGER pushers_device_deleted AFTER DELETE ON devices
BEGIN
    DELETE FROM pushers WHERE user_id = OLD.user_id AND device_id = OLD.device_id;
END;

-- Account deactivation (POST /account/deactivate) removes, besides devices and tokens (which
-- take device keys, one-time keys and to-device inboxes with them): every pusher, the key
-- backups, the cross-signing keys, signatures made by or on the user's keys, account data and
-- push rules, as Synapse does.
CREATE TRIGGER user_deactivated AFTER UPDATE OF deactivated ON users
WHEN NEW.deactivated = 1 AND OLD.deactivated = 0
BEGIN
    DELETE FROM pushers WHERE user_id = NEW.user_id;
    DELETE FROM room_key_backup_sessions WHERE user_id = NEW.user_id;
    DELETE FROM room_key_backup_versions WHERE user_id = NEW.user_id;
    DELETE FROM e2e_cross_signing_keys WHERE user_id = NEW.user_id;
    DELETE FROM e2e_signatures
        WHERE signer_user_id = NEW.user_id OR target_user_id = NEW.user_id;
    DELETE FROM account_data WHERE user_id = NEW.user_id;
    DELETE FROM push_rules WHERE user_id = NEW.user_id;
    DELETE FROM push_rule_defaults WHERE user_id = NEW.user_id;
END;
