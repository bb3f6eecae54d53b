-- The loader's private DuckDB file. Readers never open it: they read the
-- published Parquet partitions through catalog.duckdb (see docs/warehouse.md).

-- Bumped when a table's shape changes; an older file must be rebuilt.
CREATE TABLE IF NOT EXISTS schema_info (version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS loader_state (
    id INTEGER PRIMARY KEY,
    position BIGINT NOT NULL,          -- last notification id loaded
    as_of_time TIMESTAMPTZ,            -- latest occurred_at loaded
    published_position BIGINT NOT NULL,
    generation BIGINT NOT NULL         -- last catalog generation published
);

-- Every event, append-only, payload without the `pii` field.
CREATE TABLE IF NOT EXISTS events (
    position BIGINT NOT NULL,
    aggregate_id UUID NOT NULL,
    aggregate_version BIGINT NOT NULL,
    aggregate_type VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    topic VARCHAR NOT NULL,
    class_version INTEGER NOT NULL,
    occurred_at TIMESTAMPTZ,
    recorded_at TIMESTAMPTZ,
    command_id VARCHAR,
    actor VARCHAR,
    payload VARCHAR NOT NULL      -- JSON text (the store's transcoding)
);

-- One row per conversation (Call aggregate).
CREATE TABLE IF NOT EXISTS fact_call (
    call_id UUID NOT NULL,
    external_id VARCHAR,
    direction VARCHAR,
    dialed_number VARCHAR,
    trunk VARCHAR,
    caller_hash VARCHAR,
    offered_at TIMESTAMPTZ,
    ivr_path VARCHAR,
    self_service BOOLEAN,
    queue VARCHAR,                 -- first queue entered
    last_queue VARCHAR,
    skills VARCHAR[],              -- skills required when first queued
    queued_at TIMESTAMPTZ,         -- first entry into a queue
    first_alerted_at TIMESTAMPTZ,
    answered_at TIMESTAMPTZ,       -- first answer
    answer_agent_id UUID,
    answer_alerted_at TIMESTAMPTZ, -- alert of the leg that answered first
    ended_at TIMESTAMPTZ,
    outcome VARCHAR,               -- answered|abandoned|self_service|other_exit|in_progress
    abandon_stage VARCHAR,         -- ivr|queue|ringing
    hung_up_by VARCHAR,
    end_cause VARCHAR,
    wait_s DOUBLE,                 -- queued_at -> answer or end (queued calls only)
    abandon_after_s DOUBLE,        -- time waited in the stage abandoned
    alert_to_answer_s DOUBLE,
    talk_s DOUBLE,
    hold_s DOUBLE,
    acw_s DOUBLE,                  -- NULL while an agent is still in wrap-up
    legs INTEGER,
    transfers INTEGER,
    ring_no_answers INTEGER,
    overflows INTEGER,             -- moves by the ACD to another queue (Queued v2 reason overflow)
    survey_score INTEGER,
    survey_scale INTEGER,          -- points on the survey's scale (SurveyAnswered v2; v1 = 5)
    work_orders INTEGER,
    first_position BIGINT,
    last_position BIGINT
);

-- One row per agent leg (an agent alerted for the call).
CREATE TABLE IF NOT EXISTS fact_leg (
    call_id UUID NOT NULL,
    leg_id VARCHAR NOT NULL,
    agent_id UUID,
    queue VARCHAR,                 -- queue the caller waited in when alerted
    offered_at TIMESTAMPTZ,        -- of the call, for attribution
    alerted_at TIMESTAMPTZ,
    answered_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    outcome VARCHAR,               -- answered|no_answer|busy|unavailable|rejected|canceled|caller_hung_up|open
    end_reason VARCHAR,            -- transfer|hangup|ring_no_answer|abandoned|consult_ended
    hung_up_by VARCHAR,            -- caller|agent|system|supervisor when the leg ended by a hang-up
    ring_s DOUBLE,                 -- alert -> answer or end of ringing
    talk_s DOUBLE,
    hold_s DOUBLE,
    acw_s DOUBLE,                  -- the agent's wrap-up after this leg (answered legs; NULL while open)
    first_position BIGINT
);

-- Agent state intervals: from one state change to the next.
CREATE TABLE IF NOT EXISTS fact_agent_state (
    agent_id UUID NOT NULL,
    state VARCHAR NOT NULL,        -- logged_out|not_ready|ready|ringing|on_call|wrap_up
    reason VARCHAR,
    call_id UUID,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,          -- NULL while the agent is still in it
    duration_s DOUBLE,
    start_position BIGINT NOT NULL
);

-- One row per work order, with its milestones.
CREATE TABLE IF NOT EXISTS fact_work_order (
    work_order_id UUID NOT NULL,
    number VARCHAR,
    type VARCHAR,
    category VARCHAR,
    channel VARCHAR,
    priority VARCHAR,
    call_id UUID,
    customer_ref VARCHAR,
    opened_at TIMESTAMPTZ,
    dispatched_at TIMESTAMPTZ,     -- first dispatch
    department VARCHAR,            -- latest department
    accepted_at TIMESTAMPTZ,
    resolved_at TIMESTAMPTZ,       -- latest resolution
    closed_at TIMESTAMPTZ,
    deadline_at TIMESTAMPTZ,       -- resolve deadline recorded (DeadlinesSet): the one in force
                                   -- at the resolution, else the latest; NULL without one
    dispatch_deadline_at TIMESTAMPTZ, -- dispatch deadline in force at the first dispatch (NULL:
                                   -- none recorded, e.g. a type the policy does not dispatch)
    policy_version VARCHAR,        -- of the latest DeadlinesSet; NULL: no promise recorded
    paused_at TIMESTAMPTZ,         -- start of the clock pause still running, else NULL
    status VARCHAR,
    reopen_count INTEGER,
    callbacks INTEGER,
    satisfaction INTEGER,          -- latest reached callback's score
    callback_tasks INTEGER,        -- callback tasks scheduled (CallbackTaskScheduled)
    callbacks_reached_on_time INTEGER, -- tasks whose customer was reached by the task's due_at
    callback_pending_due_at TIMESTAMPTZ, -- due_at of a task not reached/refused/given up yet
    first_position BIGINT,
    last_position BIGINT
);

CREATE TABLE IF NOT EXISTS dim_agent (
    agent_id UUID NOT NULL,
    employee_no VARCHAR,
    name VARCHAR,
    team VARCHAR,
    skills VARCHAR[],
    registered_at TIMESTAMPTZ
);

-- Months (UTC) whose Parquet partitions must be rewritten at the next publish;
-- written in the same transaction as the facts, so a crash loses none.
CREATE TABLE IF NOT EXISTS dirty_month (
    fact VARCHAR NOT NULL,
    month VARCHAR NOT NULL
);
