-- 0016: guest accounts (https://spec.matrix.org/v1.19/client-server-api/#guest-access).
-- A guest is registered with POST /register?kind=guest, has no password, may use only the
-- endpoints the spec lists for guests and may join only rooms whose m.room.guest_access is
-- can_join. Upgrading the account (POST /register with guest_access_token) clears the flag.
ALTER TABLE users ADD COLUMN is_guest INTEGER NOT NULL DEFAULT 0;
