-- ccpulse tables, version 4 (issue 23): contacts offered while their queue was closed (business
-- hours, public holidays, the center's closed dates), per minute. Unless the queue counts them,
-- they are in no other count of their minute (docs/metrics.md, "Business hours and holidays").
-- Rows written before this migration read 0.
ALTER TABLE {database}.contributions ADD COLUMN IF NOT EXISTS offered_out_of_hours UInt32 DEFAULT 0 AFTER abandoned_in_sl;
ALTER TABLE {database}.metrics_minute ADD COLUMN IF NOT EXISTS offered_out_of_hours UInt64 DEFAULT 0 AFTER abandoned_in_sl;
