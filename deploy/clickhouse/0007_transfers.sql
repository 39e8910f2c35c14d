-- ccpulse tables, version 7 (issue 22): transfers. Per minute, the answered contacts an agent
-- transferred (at the transfer's time); per contact, when and where to. Rows written before this
-- migration read 0 / NULL.
ALTER TABLE {database}.contributions ADD COLUMN IF NOT EXISTS transferred UInt32 DEFAULT 0 AFTER hold_us_sum;
ALTER TABLE {database}.metrics_minute ADD COLUMN IF NOT EXISTS transferred UInt64 DEFAULT 0 AFTER hold_seconds_sum;
ALTER TABLE {database}.contact_facts ADD COLUMN IF NOT EXISTS transferred_at Nullable(DateTime64(6, 'UTC')) AFTER resolved;
ALTER TABLE {database}.contact_facts ADD COLUMN IF NOT EXISTS transferred_to_queue Nullable(String) AFTER transferred_at;
ALTER TABLE {database}.contact_facts ADD COLUMN IF NOT EXISTS transferred_to_agent Nullable(String) AFTER transferred_to_queue;

CREATE OR REPLACE VIEW {database}.contacts AS
SELECT f.contact_id AS contact_id, f.queue AS queue, f.channel AS channel, f.customer_id AS customer_id,
       f.reason AS reason, f.case_id AS case_id, f.agent_id AS agent_id, f.offered_at AS offered_at,
       f.answered_at AS answered_at, f.abandoned_at AS abandoned_at, f.ended_at AS ended_at,
       f.surveyed_at AS surveyed_at, f.last_event_at AS last_event_at, f.wait_seconds AS wait_seconds,
       f.abandon_wait_seconds AS abandon_wait_seconds, f.handle_seconds AS handle_seconds,
       f.hold_seconds AS hold_seconds,
       f.outcome AS outcome, f.answered_in_sl AS answered_in_sl, f.short_abandoned AS short_abandoned,
       f.resolved AS resolved, f.transferred_at AS transferred_at, f.transferred_to_queue AS transferred_to_queue,
       f.transferred_to_agent AS transferred_to_agent, f.csat AS csat, f.nps AS nps, f.ces AS ces,
       if(i.linked = 1, CAST(i.issue_id, 'Nullable(String)'), NULL) AS issue_id,
       if(i.linked = 1, CAST(i.is_repeat, 'Nullable(Bool)'), NULL) AS is_repeat,
       f.version AS version, f.inserted_at AS inserted_at
FROM {database}.contact_facts AS f FINAL
LEFT JOIN (SELECT contact_id, issue_key, issue_id, is_repeat, 1 AS linked FROM {database}.contact_issues FINAL) AS i
    ON i.contact_id = f.contact_id AND i.issue_key = f.issue_key;
