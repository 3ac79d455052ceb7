-- 0018: the User-Agent a device was last seen with, beside last_seen_ts and last_seen_ip, for
-- GET /admin/whois (https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3adminwhoisuserid).
-- service/client_ips.py writes the three when a device's requests show a new address or agent,
-- or a minute after the last write.
ALTER TABLE devices ADD COLUMN last_seen_user_agent TEXT;
