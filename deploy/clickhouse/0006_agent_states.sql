-- ccpulse tables, version 6 (issue 22): the agents' state log. One row per agent.state_changed:
-- the state from started_at until the agent's next state event (ended_at; NULL while it is the
-- agent's state now), for the queues that event listed. A row is written again when the agent's
-- next event arrives (ReplacingMergeTree: FINAL keeps the latest).
CREATE TABLE IF NOT EXISTS {database}.agent_states
(
    agent_id    String,
    started_at  DateTime64(6, 'UTC'),
    event_id    String,
    state       LowCardinality(String),
    queues      Array(LowCardinality(String)),
    reason      Nullable(String),
    ended_at    Nullable(DateTime64(6, 'UTC')),
    seconds     Nullable(Decimal(18, 6)),
    version     UInt64,
    is_deleted  UInt8,
    inserted_at DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(started_at)
ORDER BY (agent_id, started_at, event_id)
TTL toDateTime(inserted_at) + INTERVAL 760 DAY DELETE;

-- Seconds in each state per agent, queue and minute (offline is not timed): the closed intervals
-- of agent_states cut at minutes, for each queue the interval's starting event listed. Summed
-- over a queue's agents and the minutes of a window, they give ccpulse_agent_state_seconds and so
-- occupancy and utilisation (docs/analysts.md); the state an agent is in now is not in it yet.
CREATE VIEW IF NOT EXISTS {database}.agent_state_minute AS
SELECT minute, agent_id, queue, state, seconds
FROM
(
    SELECT toDateTime(minute_index * 60, 'UTC') AS minute, agent_id, queues, state,
           toDecimal64(least(ended_us, (minute_index + 1) * 60000000) - greatest(started_us, minute_index * 60000000),
                       6) / 1000000 AS seconds
    FROM
    (
        SELECT agent_id, state, queues, toUnixTimestamp64Micro(started_at) AS started_us,
               toUnixTimestamp64Micro(assumeNotNull(ended_at)) AS ended_us
        FROM {database}.agent_states FINAL
        WHERE ended_at IS NOT NULL AND state != 'offline' AND ended_at > started_at
    )
    ARRAY JOIN range(intDiv(started_us, 60000000), intDiv(ended_us - 1, 60000000) + 1) AS minute_index
)
ARRAY JOIN queues AS queue;
