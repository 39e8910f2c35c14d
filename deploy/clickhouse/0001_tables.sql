-- ccpulse tables, version 1. Applied by the worker on start (pipeline/warehouse.py), once; every
-- statement is idempotent (IF NOT EXISTS), so a run interrupted half way is safely run again.
-- {database} is replaced by the configured database (default ccpulse).
--
-- Why these engines: every table is a ReplacingMergeTree on its key with a version that grows
-- with the key's state, so a replay, a restart or a retried insert writes a key again and never
-- adds to it. Query with FINAL for one (the latest) row per key. Tables whose key can change its
-- time columns (a late, earlier contact.offered moves a contact) are not partitioned by time:
-- ReplacingMergeTree replaces rows only within a partition.
--
-- Retention (TTL) counts from when a row was written, not from its event time, so replaying or
-- back-filling old traffic keeps it: events 13 months, contacts, issues and contributions 25
-- months, metrics_minute 5 years. Change them with a migration of your own, e.g.
--   ALTER TABLE ccpulse.events MODIFY TTL toDateTime(inserted_at) + INTERVAL 90 DAY DELETE

CREATE DATABASE IF NOT EXISTS {database};

-- Every valid event, once per event_id (the earliest copy by occurred_at wins: version is
-- 2^62 - occurred_at in microseconds). raw is the event as it came (customer_id pseudonymised
-- when CCPULSE_CUSTOMER_KEY is set).
CREATE TABLE IF NOT EXISTS {database}.events
(
    event_id     String,
    type         LowCardinality(String),
    occurred_at  DateTime64(6, 'UTC'),
    contact_id   Nullable(String),
    queue        LowCardinality(Nullable(String)),
    channel      LowCardinality(Nullable(String)),
    agent_id     Nullable(String),
    raw          String CODEC(ZSTD(3)),
    version      UInt64,
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id
TTL toDateTime(inserted_at) + INTERVAL 395 DAY DELETE;

-- One row per contact: its facts, the outcome that counts, and its issue.
CREATE TABLE IF NOT EXISTS {database}.contacts
(
    contact_id            String,
    queue                 LowCardinality(Nullable(String)),
    channel               LowCardinality(Nullable(String)),
    customer_id           Nullable(String),
    reason                Nullable(String),
    case_id               Nullable(String),
    agent_id              Nullable(String),
    offered_at            Nullable(DateTime64(6, 'UTC')),
    answered_at           Nullable(DateTime64(6, 'UTC')),
    abandoned_at          Nullable(DateTime64(6, 'UTC')),
    ended_at              Nullable(DateTime64(6, 'UTC')),
    surveyed_at           Nullable(DateTime64(6, 'UTC')),
    last_event_at         DateTime64(6, 'UTC'),
    wait_seconds          Nullable(Decimal(18, 6)),
    abandon_wait_seconds  Nullable(Decimal(18, 6)),
    handle_seconds        Nullable(Decimal(18, 6)),
    outcome               LowCardinality(Nullable(String)),
    answered_in_sl        Nullable(Bool),
    short_abandoned       Nullable(Bool),
    resolved              Nullable(Bool),
    csat                  Nullable(UInt8),
    nps                   Nullable(UInt8),
    ces                   Nullable(UInt8),
    issue_id              Nullable(String),
    is_repeat             Nullable(Bool),
    version               UInt64,
    inserted_at           DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX offered_at_range offered_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree(version)
ORDER BY contact_id
TTL toDateTime(inserted_at) + INTERVAL 760 DAY DELETE;

-- One row per issue (a customer's contacts about one case, or one reason, within fcr_window_days).
CREATE TABLE IF NOT EXISTS {database}.issues
(
    issue_id              String,
    keyed_by              LowCardinality(String),
    customer_id           String,
    reason                Nullable(String),
    case_id               Nullable(String),
    queue                 LowCardinality(String),
    channel               LowCardinality(String),
    opened_at             DateTime64(6, 'UTC'),
    opening_contact_id    String,
    contacts              UInt32,
    judged_at             Nullable(DateTime64(6, 'UTC')),
    fcr                   Nullable(Bool),
    resolved_at           Nullable(DateTime64(6, 'UTC')),
    resolution_seconds    Nullable(Decimal(18, 6)),
    resolving_contact_id  Nullable(String),
    last_contact_at       DateTime64(6, 'UTC'),
    version               UInt64,
    is_deleted            UInt8,
    inserted_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY issue_id
TTL toDateTime(inserted_at) + INTERVAL 760 DAY DELETE;

-- What each source (a contact, an issue key) contributes to each minute, queue and channel:
-- metrics_minute is the sum of these. Durations in integer microseconds.
CREATE TABLE IF NOT EXISTS {database}.contributions
(
    queue                   LowCardinality(String),
    channel                 LowCardinality(String),
    minute                  DateTime('UTC'),
    source                  String,
    offered                 UInt32,
    answered                UInt32,
    answered_in_sl          UInt32,
    abandoned               UInt32,
    short_abandoned         UInt32,
    wait_us_sum             Int64,
    handled                 UInt32,
    handle_us_sum           Int64,
    csat_responses          UInt32,
    csat_positive           UInt32,
    nps_responses           UInt32,
    nps_promoters           UInt32,
    nps_detractors          UInt32,
    ces_responses           UInt32,
    ces_sum                 UInt32,
    issues_judged           UInt32,
    issues_fcr              UInt32,
    issues_resolved         UInt32,
    resolution_us_sum       Int64,
    version                 UInt64,
    is_deleted              UInt8,
    inserted_at             DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(minute)
ORDER BY (queue, channel, minute, source)
TTL inserted_at + INTERVAL 760 DAY DELETE;

-- One row per minute, queue and channel: the contribution counts and sums of that minute.
-- Summing them over any range of minutes gives that window's metrics exactly.
CREATE TABLE IF NOT EXISTS {database}.metrics_minute
(
    minute                  DateTime('UTC'),
    queue                   LowCardinality(String),
    channel                 LowCardinality(String),
    offered                 UInt64,
    answered                UInt64,
    answered_in_sl          UInt64,
    abandoned               UInt64,
    short_abandoned         UInt64,
    wait_seconds_sum        Decimal(18, 6),
    handled                 UInt64,
    handle_seconds_sum      Decimal(18, 6),
    csat_responses          UInt64,
    csat_positive           UInt64,
    nps_responses           UInt64,
    nps_promoters           UInt64,
    nps_detractors          UInt64,
    ces_responses           UInt64,
    ces_sum                 UInt64,
    issues_judged           UInt64,
    issues_fcr              UInt64,
    issues_resolved         UInt64,
    resolution_seconds_sum  Decimal(18, 6),
    version                 UInt64,
    is_deleted              UInt8,
    inserted_at             DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(minute)
ORDER BY (queue, channel, minute)
TTL inserted_at + INTERVAL 5 YEAR DELETE;
