"""SQL that derives the facts from the `events` table.

Facts are a pure function of the events: each batch recomputes the rows of
the aggregates it touched from all their events (bounded below by a
position, so the scan stays near the end of the table). That makes a load
incremental, exactly-once (with the position committed in the same
transaction) and a rebuild deterministic.
"""

from __future__ import annotations

AGENT_STATE_EVENTS = ("Registered", "LoggedIn", "LoggedOut", "BecameReady", "BecameNotReady",
                      "Ringing", "MissedCall", "CallConnected", "CallReleased")
_AGENT_IN = ", ".join(f"'{t}'" for t in AGENT_STATE_EVENTS)

# Positions of the fields pulled out of a Call event's payload in one parse.
CALL_FIELDS = ["queue", "leg_id", "agent_id._data_", "menu", "digits", "hung_up_by", "cause",
               "stage", "kind", "target_type", "target", "from_leg_id", "score", "external_id",
               "direction", "dialed_number", "trunk", "caller_hash", "required_skills", "outcome",
               "scale", "to_leg_id", "reason"]
F = {name.split(".")[0]: i + 1 for i, name in enumerate(CALL_FIELDS)}
_CALL_PATHS = "[" + ", ".join(f"'$.{p}'" for p in CALL_FIELDS) + "]"


def f(name: str) -> str:
    return f"f[{F[name]}]"


# -- the batch ---------------------------------------------------------------
# The batch goes straight into `events`; `batch` is then a view of the table's
# tail (zone maps on position skip the rest), so payloads are written once.
INSERT_BATCH = """
INSERT INTO events
WITH raw AS (
    SELECT position, aggregate_id, aggregate_version, topic, aggregate_type, event_type, state,
           json_transform(state, '{"timestamp": {"_data_": "TIMESTAMPTZ"},
                                   "occurred_at": {"_data_": "TIMESTAMPTZ"},
                                   "command_id": "VARCHAR", "actor": "VARCHAR",
                                   "class_version": "INTEGER"}') AS h
    FROM arrow_batch
)
SELECT position,
       aggregate_id::UUID AS aggregate_id,
       aggregate_version,
       aggregate_type,
       event_type,
       topic,
       coalesce(h.class_version, 1) AS class_version,
       h.occurred_at._data_ AS occurred_at,
       h.timestamp._data_ AS recorded_at,
       h.command_id, h.actor,
       (CASE WHEN contains(state, '"pii"') THEN json_merge_patch(state, '{"pii": null}')
             ELSE state END) AS payload
FROM raw;
CREATE OR REPLACE TEMP VIEW batch AS SELECT * FROM events WHERE position > $prev;
"""

# -- agent state intervals ---------------------------------------------------
AGENT_TOUCHED = f"""
CREATE OR REPLACE TEMP TABLE t_agent AS
WITH b AS (
    SELECT aggregate_id AS agent_id, min(position) AS p FROM batch
    WHERE aggregate_type = 'Agent' AND event_type IN ({_AGENT_IN}) GROUP BY 1
), o AS (
    SELECT agent_id, max(start_position) AS start_position
    FROM fact_agent_state WHERE agent_id IN (SELECT agent_id FROM b) GROUP BY 1
)
SELECT b.agent_id, coalesce(least(o.start_position, b.p), b.p) AS from_pos
FROM b LEFT JOIN o USING (agent_id);
"""

AGENT_OLD = """
CREATE OR REPLACE TEMP TABLE t_agent_old AS
SELECT s.* FROM fact_agent_state s JOIN t_agent t
  ON s.agent_id = t.agent_id AND s.start_position >= t.from_pos;
DELETE FROM fact_agent_state s USING t_agent t
  WHERE s.agent_id = t.agent_id AND s.start_position >= t.from_pos;
"""

AGENT_INSERT = f"""
CREATE OR REPLACE TEMP TABLE t_agent_new AS
SELECT agent_id, state, reason, call_id, started_at, ended_at,
       epoch(ended_at - started_at) AS duration_s, start_position
FROM (
    SELECT e.aggregate_id AS agent_id,
           CASE e.event_type
               WHEN 'Registered' THEN 'logged_out' WHEN 'LoggedOut' THEN 'logged_out'
               WHEN 'LoggedIn' THEN 'not_ready' WHEN 'BecameReady' THEN 'ready'
               WHEN 'BecameNotReady' THEN 'not_ready' WHEN 'Ringing' THEN 'ringing'
               WHEN 'CallConnected' THEN 'on_call'
               WHEN 'MissedCall' THEN CASE WHEN x[2] = 'canceled' THEN 'ready' ELSE 'not_ready' END
               WHEN 'CallReleased' THEN CASE WHEN x[3] = 'false' THEN 'ready' ELSE 'wrap_up' END
           END AS state,
           CASE e.event_type
               WHEN 'LoggedIn' THEN 'login' WHEN 'BecameNotReady' THEN x[4] WHEN 'LoggedOut' THEN x[4]
               WHEN 'MissedCall' THEN CASE WHEN x[2] = 'canceled' THEN NULL ELSE 'ring_no_answer' END
           END AS reason,
           CASE WHEN e.event_type IN ('Ringing', 'CallConnected', 'CallReleased')
                THEN x[1]::UUID END AS call_id,
           e.occurred_at AS started_at,
           lead(e.occurred_at) OVER (PARTITION BY e.aggregate_id ORDER BY e.position) AS ended_at,
           e.position AS start_position
    FROM (SELECT *, json_extract_string(payload, ['$.call_id._data_', '$.outcome', '$.wrap_up',
                                                  '$.reason']) AS x
          FROM events WHERE position >= $lo AND aggregate_type = 'Agent'
                        AND event_type IN ({_AGENT_IN})) e
    JOIN t_agent t ON e.aggregate_id = t.agent_id AND e.position >= t.from_pos
);
INSERT INTO fact_agent_state SELECT * FROM t_agent_new;
"""

DIM_AGENT = """
INSERT INTO dim_agent
-- name: NULL since Agent.Registered v2 keeps it in pii, which never reaches the warehouse
SELECT aggregate_id, payload->>'employee_no', NULL::VARCHAR, payload->>'team',
       coalesce(json_keys(payload->'skills'), []), occurred_at
FROM batch WHERE aggregate_type = 'Agent' AND event_type = 'Registered';
UPDATE dim_agent d SET skills = coalesce(json_keys(s.payload->'skills'), [])
FROM (SELECT aggregate_id, arg_max(payload, position) AS payload FROM batch
      WHERE aggregate_type = 'Agent' AND event_type = 'SkillsChanged' GROUP BY 1) s
WHERE d.agent_id = s.aggregate_id;
"""

# -- calls and legs ------------------------------------------------------------
CALL_TOUCHED = """
CREATE OR REPLACE TEMP TABLE t_call AS
SELECT DISTINCT aggregate_id AS call_id FROM batch WHERE aggregate_type = 'Call'
UNION
SELECT call_id FROM t_agent_old WHERE state = 'wrap_up' AND call_id IS NOT NULL
UNION
SELECT call_id FROM t_agent_new WHERE state = 'wrap_up' AND call_id IS NOT NULL;
"""

CALL_LOW = """
SELECT least((SELECT min(position) FROM batch WHERE aggregate_type = 'Call'),
             (SELECT min(first_position) FROM fact_call WHERE call_id IN (SELECT call_id FROM t_call)))
"""

CALL_OLD = """
INSERT INTO dirty_month SELECT DISTINCT 'fact_call', coalesce(strftime(offered_at, '%Y-%m'), 'none')
  FROM fact_call WHERE call_id IN (SELECT call_id FROM t_call);
INSERT INTO dirty_month SELECT DISTINCT 'fact_leg', coalesce(strftime(alerted_at, '%Y-%m'), 'none')
  FROM fact_leg WHERE call_id IN (SELECT call_id FROM t_call);
DELETE FROM fact_call WHERE call_id IN (SELECT call_id FROM t_call);
DELETE FROM fact_leg WHERE call_id IN (SELECT call_id FROM t_call);
"""

CALL_EVENTS = f"""
CREATE OR REPLACE TEMP TABLE ce AS
SELECT e.aggregate_id AS call_id, e.aggregate_version AS v, e.position, e.event_type AS t,
       e.occurred_at AS ts, json_extract_string(e.payload, {_CALL_PATHS}) AS f
FROM events e
WHERE e.position >= $lo AND e.aggregate_type = 'Call'
  AND e.aggregate_id IN (SELECT call_id FROM t_call);

CREATE OR REPLACE TEMP TABLE ce_marks AS
SELECT *,
       last_value(CASE WHEN t = 'Queued' THEN {f('queue')}
                       WHEN t = 'Transferred' AND {f('target_type')} = 'queue' THEN {f('target')} END
                  IGNORE NULLS) OVER w AS cur_queue,
       -- the leg serving the caller: the alerted agent's, or the consult leg
       -- an attended transfer handed the call to (Transferred.to_leg_id)
       last_value(CASE WHEN t = 'AgentAlerted' THEN {f('leg_id')}
                       WHEN t = 'Transferred' THEN {f('to_leg_id')} END IGNORE NULLS) OVER w AS cur_leg
FROM ce
WINDOW w AS (PARTITION BY call_id ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- A hold lasts until the next resume, transfer or end of the call.
CREATE OR REPLACE TEMP TABLE ce_holds AS
SELECT call_id, cur_leg AS leg_id, epoch(hold_end - ts) AS hold_s
FROM (SELECT call_id, t, ts, cur_leg, lead(ts) OVER (PARTITION BY call_id ORDER BY v) AS hold_end
      FROM ce_marks WHERE t IN ('Held', 'Resumed', 'Transferred', 'Ended', 'Abandoned'))
WHERE t = 'Held' AND hold_end IS NOT NULL;
"""

LEG_INSERT = f"""
INSERT INTO fact_leg
WITH alerts AS (
    -- an agent's leg, or a colleague's consult leg (attended transfer)
    SELECT call_id, {f('leg_id')} AS leg_id, {f('agent_id')}::UUID AS agent_id, cur_queue AS queue,
           ts AS alerted_at, position
    FROM ce_marks WHERE t IN ('AgentAlerted', 'ConsultAlerted')
), offered AS (
    SELECT call_id, min(ts) AS offered_at FROM ce WHERE t = 'Offered' GROUP BY 1
), ans AS (
    SELECT call_id, {f('leg_id')} AS leg_id, min(ts) AS answered_at FROM ce
    WHERE t IN ('Answered', 'ConsultAnswered') GROUP BY ALL
), ends AS (
    SELECT call_id, CASE WHEN t = 'Transferred' THEN {f('from_leg_id')} ELSE {f('leg_id')} END AS leg_id,
           min(ts) AS ended_at,
           arg_min(CASE t WHEN 'RingNoAnswer' THEN 'ring_no_answer' WHEN 'Transferred' THEN 'transfer'
                          WHEN 'Ended' THEN 'hangup' WHEN 'ConsultMissed' THEN 'ring_no_answer'
                          WHEN 'ConsultEnded' THEN 'consult_ended' ELSE 'abandoned' END, v)
               AS end_reason,
           arg_min({f('outcome')}, v) AS rna_outcome,
           -- Who hung up, when the leg ended by a hang-up (not a transfer or a ring-no-answer).
           arg_min(CASE t WHEN 'Ended' THEN {f('hung_up_by')} WHEN 'Abandoned' THEN 'caller' END, v)
               AS hung_up_by
    -- a consult leg that the call was handed to ends with the call (its
    -- leg_id on Ended); one that was not ends missed or ended
    FROM ce WHERE t IN ('RingNoAnswer', 'Transferred', 'Ended', 'Abandoned', 'ConsultMissed',
                        'ConsultEnded')
    GROUP BY ALL
), holds AS (
    SELECT call_id, leg_id, sum(hold_s) AS hold_s FROM ce_holds GROUP BY ALL
), wraps AS (
    SELECT call_id, agent_id, started_at, duration_s, ended_at IS NULL AS open
    FROM fact_agent_state WHERE state = 'wrap_up' AND call_id IN (SELECT call_id FROM t_call)
), answered_legs AS (
    SELECT a.call_id, a.agent_id, a.leg_id, n.answered_at
    FROM alerts a JOIN ans n USING (call_id, leg_id)
), leg_acw AS (
    -- Each wrap-up belongs to the agent's latest leg of the call answered
    -- before it began (an agent who took the call twice wraps up twice).
    SELECT l.call_id, l.leg_id, sum(w.duration_s) AS acw_s, bool_or(w.open) AS open
    FROM wraps w ASOF JOIN answered_legs l
      ON w.call_id = l.call_id AND w.agent_id = l.agent_id AND w.started_at >= l.answered_at
    GROUP BY ALL
)
SELECT a.call_id, a.leg_id, a.agent_id, a.queue, o.offered_at, a.alerted_at, n.answered_at,
       e.ended_at,
       CASE WHEN n.answered_at IS NOT NULL THEN 'answered'
            WHEN e.end_reason = 'ring_no_answer' THEN e.rna_outcome
            WHEN e.end_reason = 'abandoned' THEN 'caller_hung_up'
            WHEN e.end_reason IS NOT NULL THEN 'ended'
            ELSE 'open' END AS outcome,
       e.end_reason, e.hung_up_by,
       epoch(coalesce(n.answered_at, e.ended_at) - a.alerted_at) AS ring_s,
       CASE WHEN n.answered_at IS NOT NULL AND e.ended_at IS NOT NULL
            THEN epoch(e.ended_at - n.answered_at) - coalesce(h.hold_s, 0) END AS talk_s,
       CASE WHEN n.answered_at IS NOT NULL THEN coalesce(h.hold_s, 0) END AS hold_s,
       CASE WHEN n.answered_at IS NULL OR e.ended_at IS NULL OR w.open THEN NULL
            ELSE coalesce(w.acw_s, 0) END AS acw_s,
       a.position
FROM alerts a
LEFT JOIN offered o USING (call_id)
LEFT JOIN ans n USING (call_id, leg_id)
LEFT JOIN ends e USING (call_id, leg_id)
LEFT JOIN holds h USING (call_id, leg_id)
LEFT JOIN leg_acw w USING (call_id, leg_id);
"""

CALL_INSERT = f"""
INSERT INTO fact_call
WITH agg AS (
    SELECT call_id,
           any_value({f('external_id')}) FILTER (WHERE t = 'Offered') AS external_id,
           any_value({f('direction')}) FILTER (WHERE t = 'Offered') AS direction,
           any_value({f('dialed_number')}) FILTER (WHERE t = 'Offered') AS dialed_number,
           any_value({f('trunk')}) FILTER (WHERE t = 'Offered') AS trunk,
           any_value({f('caller_hash')}) FILTER (WHERE t = 'Offered') AS caller_hash,
           min(ts) FILTER (WHERE t = 'Offered') AS offered_at,
           string_agg(CASE WHEN t = 'IvrEntered' THEN {f('menu')}
                           ELSE {f('menu')} || ':' || {f('digits')} END, '>' ORDER BY v)
               FILTER (WHERE t IN ('IvrEntered', 'MenuChoiceMade')) AS ivr_path,
           coalesce(bool_or(t = 'SelfServiceUsed'), false) AS self_service,
           arg_min({f('queue')}, v) FILTER (WHERE t = 'Queued') AS queue,
           arg_max(CASE WHEN t = 'Queued' THEN {f('queue')} ELSE {f('target')} END, v)
               FILTER (WHERE t = 'Queued' OR (t = 'Transferred' AND {f('target_type')} = 'queue'))
               AS last_queue,
           arg_min(coalesce(json_keys({f('required_skills')}), []), v) FILTER (WHERE t = 'Queued') AS skills,
           min(ts) FILTER (WHERE t = 'Queued') AS queued_at,
           min(ts) FILTER (WHERE t = 'AgentAlerted') AS first_alerted_at,
           min(ts) FILTER (WHERE t = 'Answered') AS answered_at,
           arg_min({f('agent_id')}, v) FILTER (WHERE t = 'Answered')::UUID AS answer_agent_id,
           max(ts) FILTER (WHERE t IN ('Ended', 'Abandoned')) AS ended_at,
           coalesce(bool_or(t = 'Abandoned'), false) AS abandoned,
           any_value({f('stage')}) FILTER (WHERE t = 'Abandoned') AS abandon_stage,
           any_value({f('hung_up_by')}) FILTER (WHERE t = 'Ended') AS ended_by,
           any_value({f('cause')}) FILTER (WHERE t IN ('Ended', 'Abandoned')) AS end_cause,
           count(*) FILTER (WHERE t = 'Transferred') AS transfers,
           count(*) FILTER (WHERE t = 'RingNoAnswer') AS ring_no_answers,
           count(*) FILTER (WHERE t = 'Queued' AND {f('reason')} = 'overflow') AS overflows,
           any_value({f('score')}::INTEGER) FILTER (WHERE t = 'SurveyAnswered') AS survey_score,
           any_value({f('scale')}::INTEGER) FILTER (WHERE t = 'SurveyAnswered') AS survey_scale,
           count(*) FILTER (WHERE t = 'WorkOrderLinked') AS work_orders,
           min(position) AS first_position, max(position) AS last_position
    FROM ce GROUP BY call_id
), lg AS (
    SELECT call_id, count(*) AS legs, sum(talk_s) AS talk_s,
           arg_min(alerted_at, answered_at) FILTER (WHERE answered_at IS NOT NULL) AS answer_alerted_at
    FROM fact_leg WHERE call_id IN (SELECT call_id FROM t_call) GROUP BY 1
), hd AS (
    SELECT call_id, sum(hold_s) AS hold_s FROM ce_holds GROUP BY 1
), acw AS (
    SELECT call_id, sum(duration_s) AS acw_s, bool_or(ended_at IS NULL) AS open
    FROM fact_agent_state WHERE state = 'wrap_up' AND call_id IN (SELECT call_id FROM t_call)
    GROUP BY 1
)
SELECT a.call_id, external_id, direction, dialed_number, trunk, caller_hash, offered_at,
       ivr_path, self_service, queue, last_queue, skills, queued_at, first_alerted_at,
       answered_at, answer_agent_id, lg.answer_alerted_at, ended_at,
       CASE WHEN answered_at IS NOT NULL THEN 'answered'
            WHEN abandoned THEN 'abandoned'
            WHEN ended_at IS NOT NULL AND self_service THEN 'self_service'
            WHEN ended_at IS NOT NULL THEN 'other_exit'
            ELSE 'in_progress' END AS outcome,
       abandon_stage,
       CASE WHEN abandoned THEN 'caller' ELSE ended_by END AS hung_up_by,
       end_cause,
       CASE WHEN queued_at IS NOT NULL AND coalesce(answered_at, ended_at) IS NOT NULL
            THEN epoch(coalesce(answered_at, ended_at) - queued_at) END AS wait_s,
       CASE WHEN abandoned THEN epoch(ended_at - CASE WHEN abandon_stage = 'ivr' THEN offered_at
                                                      ELSE coalesce(queued_at, offered_at) END) END
           AS abandon_after_s,
       epoch(answered_at - lg.answer_alerted_at) AS alert_to_answer_s,
       CASE WHEN answered_at IS NOT NULL THEN lg.talk_s END AS talk_s,
       CASE WHEN answered_at IS NOT NULL THEN coalesce(hd.hold_s, 0) END AS hold_s,
       CASE WHEN answered_at IS NULL THEN NULL WHEN acw.open THEN NULL
            ELSE coalesce(acw.acw_s, 0) END AS acw_s,
       coalesce(lg.legs, 0), transfers, ring_no_answers, overflows, survey_score, survey_scale, work_orders,
       first_position, last_position
FROM agg a LEFT JOIN lg USING (call_id) LEFT JOIN hd USING (call_id) LEFT JOIN acw USING (call_id);

INSERT INTO dirty_month SELECT DISTINCT 'fact_call', coalesce(strftime(offered_at, '%Y-%m'), 'none')
  FROM fact_call WHERE call_id IN (SELECT call_id FROM t_call);
INSERT INTO dirty_month SELECT DISTINCT 'fact_leg', coalesce(strftime(alerted_at, '%Y-%m'), 'none')
  FROM fact_leg WHERE call_id IN (SELECT call_id FROM t_call);
"""

AGENT_DIRTY = """
INSERT INTO dirty_month SELECT DISTINCT 'fact_agent_state', strftime(started_at, '%Y-%m')
  FROM (SELECT started_at FROM t_agent_old UNION ALL SELECT started_at FROM t_agent_new);
"""

# -- work orders ---------------------------------------------------------------
WO_TOUCHED = """
CREATE OR REPLACE TEMP TABLE t_wo AS
SELECT DISTINCT aggregate_id AS work_order_id FROM batch WHERE aggregate_type = 'WorkOrder';
"""

WO_LOW = """
SELECT least((SELECT min(position) FROM batch WHERE aggregate_type = 'WorkOrder'),
             (SELECT min(first_position) FROM fact_work_order
              WHERE work_order_id IN (SELECT work_order_id FROM t_wo)))
"""

WO_REPLACE = """
INSERT INTO dirty_month SELECT DISTINCT 'fact_work_order', coalesce(strftime(opened_at, '%Y-%m'), 'none')
  FROM fact_work_order WHERE work_order_id IN (SELECT work_order_id FROM t_wo);
DELETE FROM fact_work_order WHERE work_order_id IN (SELECT work_order_id FROM t_wo);
INSERT INTO fact_work_order
WITH we AS (
    SELECT aggregate_id AS work_order_id, aggregate_version AS v, position, event_type AS t,
           occurred_at AS ts,
           json_extract_string(payload, ['$.number', '$.type', '$.category', '$.channel', '$.priority',
                                         '$.call_id._data_', '$.customer_ref', '$.department',
                                         '$.satisfaction', '$.deadlines.resolve._data_',
                                         '$.deadlines.dispatch._data_', '$.policy_version',
                                         '$.task', '$.due_at._data_', '$.outcome']) AS x
    FROM events
    WHERE position >= $lo AND aggregate_type = 'WorkOrder'
      AND aggregate_id IN (SELECT work_order_id FROM t_wo)
), firsts AS (
    SELECT work_order_id, min(v) FILTER (WHERE t = 'Dispatched') AS dispatched_v,
           max(v) FILTER (WHERE t = 'Resolved') AS last_resolved_v
    FROM we GROUP BY 1
), tasks AS (
    -- One row per callback task (CallbackTaskScheduled), with how it ended.
    -- v1 CallbackRecorded payloads carry no task: they belong to none.
    SELECT s.work_order_id, s.task, s.due_at,
           min(a.ts) FILTER (WHERE a.outcome = 'reached') AS reached_at,
           bool_or(a.outcome IN ('reached', 'refused', 'gave_up')) AS settled
    FROM (SELECT work_order_id, x[13]::INTEGER AS task, x[14]::TIMESTAMPTZ AS due_at
          FROM we WHERE t = 'CallbackTaskScheduled') s
    LEFT JOIN (SELECT work_order_id, x[13]::INTEGER AS task, ts,
                      CASE WHEN t = 'CallbackGaveUp' THEN 'gave_up' ELSE x[15] END AS outcome
               FROM we WHERE t IN ('CallbackRecorded', 'CallbackGaveUp') AND x[13] IS NOT NULL) a
      ON a.work_order_id = s.work_order_id AND a.task = s.task
    GROUP BY ALL
), cb AS (
    SELECT work_order_id, count(*) AS callback_tasks,
           count(*) FILTER (WHERE reached_at <= due_at) AS callbacks_reached_on_time,
           max(due_at) FILTER (WHERE NOT coalesce(settled, false)) AS callback_pending_due_at
    FROM tasks GROUP BY 1
), agg AS (
    SELECT work_order_id,
           any_value(x[1]) FILTER (WHERE t = 'Opened') AS number,
           any_value(x[2]) FILTER (WHERE t = 'Opened') AS type,
           any_value(x[3]) FILTER (WHERE t = 'Opened') AS category,
           any_value(x[4]) FILTER (WHERE t = 'Opened') AS channel,
           any_value(x[5]) FILTER (WHERE t = 'Opened') AS priority,
           any_value(x[6]) FILTER (WHERE t = 'Opened')::UUID AS call_id,
           any_value(x[7]) FILTER (WHERE t = 'Opened') AS customer_ref,
           min(ts) FILTER (WHERE t = 'Opened') AS opened_at,
           min(ts) FILTER (WHERE t = 'Dispatched') AS dispatched_at,
           arg_max(x[8], v) FILTER (WHERE t = 'Dispatched') AS department,
           min(ts) FILTER (WHERE t = 'Accepted') AS accepted_at,
           max(v) FILTER (WHERE t = 'Reopened') AS reopened_v,
           arg_max(ts, v) FILTER (WHERE t = 'Resolved') AS resolved_at,
           max(v) FILTER (WHERE t = 'Resolved') AS resolved_v,
           arg_max(ts, v) FILTER (WHERE t = 'Closed') AS closed_at,
           max(v) FILTER (WHERE t = 'Closed') AS closed_v,
           -- The promise in force when the order was resolved (a resumed
           -- clock or a reopening records a new one), else the latest.
           arg_max(x[10], v) FILTER (WHERE t = 'DeadlinesSet' AND x[10] IS NOT NULL
                                     AND v < coalesce(f.last_resolved_v, v + 1))::TIMESTAMPTZ
               AS resolve_deadline_before,
           arg_max(x[10], v) FILTER (WHERE t = 'DeadlinesSet' AND x[10] IS NOT NULL)::TIMESTAMPTZ
               AS resolve_deadline_latest,
           -- The dispatch promise in force at the first dispatch.
           arg_max(x[11], v) FILTER (WHERE t = 'DeadlinesSet' AND x[11] IS NOT NULL
                                     AND v < coalesce(f.dispatched_v, v + 1))::TIMESTAMPTZ
               AS dispatch_deadline_at,
           arg_max(x[12], v) FILTER (WHERE t = 'DeadlinesSet') AS policy_version,
           max(v) FILTER (WHERE t = 'ClockPaused') AS paused_v,
           arg_max(ts, v) FILTER (WHERE t = 'ClockPaused') AS last_paused_at,
           max(v) FILTER (WHERE t = 'ClockResumed') AS resumed_v,
           arg_max(CASE t WHEN 'Opened' THEN 'open' WHEN 'Dispatched' THEN 'dispatched'
                          WHEN 'Accepted' THEN 'accepted' WHEN 'Resolved' THEN 'resolved'
                          WHEN 'Closed' THEN 'closed' WHEN 'MergedInto' THEN 'merged'
                          WHEN 'Reopened' THEN 'reopened' END, v)
               FILTER (WHERE t IN ('Opened', 'Dispatched', 'Accepted', 'Resolved', 'Closed',
                                   'MergedInto', 'Reopened')) AS status,
           count(*) FILTER (WHERE t = 'Reopened') AS reopen_count,
           count(*) FILTER (WHERE t = 'CallbackRecorded') AS callbacks,
           arg_max(x[9]::INTEGER, v) FILTER (WHERE t = 'CallbackRecorded' AND x[9] IS NOT NULL)
               AS satisfaction,
           min(position) AS first_position, max(position) AS last_position
    FROM we JOIN firsts f USING (work_order_id) GROUP BY 1
)
SELECT work_order_id, number, type, category, channel, priority, call_id, customer_ref,
       opened_at, dispatched_at, department, accepted_at,
       CASE WHEN resolved_v > coalesce(reopened_v, 0) THEN resolved_at END,
       CASE WHEN closed_v > coalesce(reopened_v, 0) THEN closed_at END,
       CASE WHEN resolved_v > coalesce(reopened_v, 0) THEN resolve_deadline_before
            ELSE resolve_deadline_latest END,
       dispatch_deadline_at, policy_version,
       CASE WHEN paused_v > coalesce(resumed_v, 0) THEN last_paused_at END,
       status, reopen_count, callbacks, satisfaction,
       coalesce(cb.callback_tasks, 0), coalesce(cb.callbacks_reached_on_time, 0),
       cb.callback_pending_due_at,
       first_position, last_position
FROM agg LEFT JOIN cb USING (work_order_id);
INSERT INTO dirty_month SELECT DISTINCT 'fact_work_order', coalesce(strftime(opened_at, '%Y-%m'), 'none')
  FROM fact_work_order WHERE work_order_id IN (SELECT work_order_id FROM t_wo);
"""
