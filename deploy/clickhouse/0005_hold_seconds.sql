-- ccpulse tables, version 5 (issue 22): the hold time of handled contacts, per minute (at the
-- contact's ended_at, like handled and handle_seconds_sum, of which it is a part), so that
-- ccpulse_hold_seconds = hold_seconds_sum / handled over any range of minutes.
-- Rows written before this migration read 0.
ALTER TABLE {database}.contributions ADD COLUMN IF NOT EXISTS hold_us_sum Int64 DEFAULT 0 AFTER offered_out_of_hours;
ALTER TABLE {database}.metrics_minute ADD COLUMN IF NOT EXISTS hold_seconds_sum Decimal(18, 6) DEFAULT 0 AFTER offered_out_of_hours;

-- Each contact's hold time (contact.ended's hold_seconds), beside handle_seconds; NULL until it
-- ends, and for contacts written before this migration until they change. The contacts view shows
-- it from 0007_transfers on (one replacement of the view for both).
ALTER TABLE {database}.contact_facts ADD COLUMN IF NOT EXISTS hold_seconds Nullable(Decimal(18, 6)) AFTER handle_seconds;
