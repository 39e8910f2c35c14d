-- ccpulse tables, version 9 (issue 20): the metrics_minute re-sums a writer owes. While a worker
-- catches up on a backlog, its writer re-sums the minutes its board cannot vouch for (older than
-- a day: FCR outcomes and late surveys; every minute with several writers) every few seconds
-- rather than on every flush: the same minutes come back flush after flush. A minute whose re-sum
-- is put off is written here, in the flush of the contributions that changed it (before their
-- messages are committed), and written again with settled = 1 once re-summed. A writer that
-- starts re-sums what it finds unsettled, so a crash between the two loses nothing.
-- Internal to the writers: analysts read metrics_minute.

CREATE TABLE IF NOT EXISTS {database}.metrics_minute_owed
(
    queue    LowCardinality(String),
    channel  LowCardinality(String),
    minute   DateTime('UTC'),
    version  UInt64,
    settled  UInt8
)
ENGINE = ReplacingMergeTree(version, settled)
ORDER BY (queue, channel, minute);
