-- ccpulse tables, version 3 (issue 23): abandons after short_abandon_seconds and within the
-- service-level threshold, per minute, so that any service-level definition (abandons within the
-- threshold counted as met, or not) can be recomputed for any past range (docs/analysts.md).
-- Rows written before this migration read 0 in the new column (their minutes are recomputed
-- only when a contact of theirs changes).
ALTER TABLE {database}.contributions ADD COLUMN IF NOT EXISTS abandoned_in_sl UInt32 DEFAULT 0 AFTER resolution_us_sum;
ALTER TABLE {database}.metrics_minute ADD COLUMN IF NOT EXISTS abandoned_in_sl UInt64 DEFAULT 0 AFTER resolution_seconds_sum;
