-- 0015: a redaction is applied only when its sender had the right to it.
-- https://spec.matrix.org/v1.19/rooms/v11/#handling-redactions: "servers should only apply
-- redactions to events where the sender's domains match, or the sender of the redaction has the
-- appropriate permissions per the power levels."
--
-- by_power: the redaction's sender had the room's `redact` level in the state before the
-- redaction (decided by the write path, service/events.py). Rows from before this migration were
-- all made by local users on this server, whose domain matches any local target; they keep
-- by_power = 0 and are still applied to local events by the domain rule.
ALTER TABLE redactions ADD COLUMN by_power INTEGER NOT NULL DEFAULT 0;

-- The redactions that take effect: the redaction is not rejected, is in the target's room, and
-- its sender had the power or shares the target sender's server (the domain is what follows the
-- first ':' of a user id; localparts cannot contain ':').
CREATE VIEW applied_redactions (event_id, redacts) AS
SELECT r.event_id, r.redacts
FROM redactions r
JOIN events re ON re.event_id = r.event_id
JOIN events t ON t.event_id = r.redacts
WHERE re.rejected_reason IS NULL
  AND re.room_id = t.room_id
  AND (r.by_power = 1
       OR substr(re.sender, instr(re.sender, ':')) = substr(t.sender, instr(t.sender, ':')));
