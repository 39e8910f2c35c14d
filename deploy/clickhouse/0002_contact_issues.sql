-- ccpulse tables, version 2: a contact's issue is written by the issues stage into a table of its
-- own, and `contacts` becomes a view that joins it to the contact's facts (issue 20: the issues
-- stage no longer sends each contact its issue back through Kafka). `contacts` keeps its columns
-- and their meaning: analysts' queries (`SELECT ... FROM contacts FINAL`) are unchanged.
--
-- Every statement is idempotent, and the sequence is safe to run again from any point it was
-- interrupted at: the old table's rows are copied before it is dropped; a copy run again (from
-- the view, after the swap) writes rows that are already there with the same version, which
-- ReplacingMergeTree keeps once. On a server with a large `contacts` table the copy takes as long
-- as an INSERT ... SELECT of that table (docs/operations.md, "Upgrading").

-- One row per contact: its facts and the outcome that counts. issue_key is the issue key the
-- contact belongs to now (an answered contact: customer and case, or customer and reason), NULL
-- when it is in no issue.
CREATE TABLE IF NOT EXISTS {database}.contact_facts
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
    issue_key             Nullable(String),
    version               UInt64,
    inserted_at           DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX offered_at_range offered_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree(version)
ORDER BY contact_id
TTL toDateTime(inserted_at) + INTERVAL 760 DAY DELETE;

-- Per contact and issue key: the contact's issue in that key's grouping, written by the issues
-- stage (version: the key's state, which grows with every change). A contact that moved to
-- another key keeps its old row; the view reads the row of the key in its facts.
CREATE TABLE IF NOT EXISTS {database}.contact_issues
(
    contact_id   String,
    issue_key    String,
    issue_id     String,
    is_repeat    Bool,
    version      UInt64,
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (contact_id, issue_key)
TTL toDateTime(inserted_at) + INTERVAL 760 DAY DELETE;

-- Interrupted after the swap below and run again: `contacts` is missing for a moment; this makes
-- the copies below read the facts (a no-op) instead of failing. Replaced by the view at the end.
CREATE VIEW IF NOT EXISTS {database}.contacts AS
SELECT *, CAST(NULL, 'Nullable(String)') AS issue_id, CAST(NULL, 'Nullable(Bool)') AS is_repeat
FROM {database}.contact_facts;

INSERT INTO {database}.contact_facts
SELECT contact_id, queue, channel, customer_id, reason, case_id, agent_id, offered_at, answered_at,
       abandoned_at, ended_at, surveyed_at, last_event_at, wait_seconds, abandon_wait_seconds,
       handle_seconds, outcome, answered_in_sl, short_abandoned, resolved, csat, nps, ces,
       if(outcome = 'answered',
          if(case_id IS NOT NULL,
             concat('case', char(31), ifNull(customer_id, 'None'), char(31), case_id),
             concat('reason', char(31), ifNull(customer_id, 'None'), char(31), ifNull(reason, 'None'))),
          NULL) AS issue_key,
       version, inserted_at
FROM {database}.contacts;

INSERT INTO {database}.contact_issues
SELECT contact_id,
       if(case_id IS NOT NULL,
          concat('case', char(31), ifNull(customer_id, 'None'), char(31), case_id),
          concat('reason', char(31), ifNull(customer_id, 'None'), char(31), ifNull(reason, 'None'))) AS issue_key,
       assumeNotNull(issue_id), ifNull(is_repeat, false), version, inserted_at
FROM {database}.contacts
WHERE issue_id IS NOT NULL;

DROP TABLE IF EXISTS {database}.contacts SYNC;

-- What analysts query: the facts, with the issue of the key each contact is in now. FINAL inside
-- (one row per contact); `SELECT ... FROM contacts FINAL` works as before. (i.linked: a contact
-- with no row for its key gets NULLs whatever the session's join_use_nulls.)
CREATE VIEW IF NOT EXISTS {database}.contacts AS
SELECT f.contact_id AS contact_id, f.queue AS queue, f.channel AS channel, f.customer_id AS customer_id,
       f.reason AS reason, f.case_id AS case_id, f.agent_id AS agent_id, f.offered_at AS offered_at,
       f.answered_at AS answered_at, f.abandoned_at AS abandoned_at, f.ended_at AS ended_at,
       f.surveyed_at AS surveyed_at, f.last_event_at AS last_event_at, f.wait_seconds AS wait_seconds,
       f.abandon_wait_seconds AS abandon_wait_seconds, f.handle_seconds AS handle_seconds,
       f.outcome AS outcome, f.answered_in_sl AS answered_in_sl, f.short_abandoned AS short_abandoned,
       f.resolved AS resolved, f.csat AS csat, f.nps AS nps, f.ces AS ces,
       if(i.linked = 1, CAST(i.issue_id, 'Nullable(String)'), NULL) AS issue_id,
       if(i.linked = 1, CAST(i.is_repeat, 'Nullable(Bool)'), NULL) AS is_repeat,
       f.version AS version, f.inserted_at AS inserted_at
FROM {database}.contact_facts AS f FINAL
LEFT JOIN (SELECT contact_id, issue_key, issue_id, is_repeat, 1 AS linked FROM {database}.contact_issues FINAL) AS i
    ON i.contact_id = f.contact_id AND i.issue_key = f.issue_key;
