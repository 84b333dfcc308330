-- Chart 5: Daily trend - acquisition quality.
-- A new user on a day: a player registered that day (the operator's `players`
-- table, when it has their registered_at), else a player whose first session
-- in the whole table, history before the period included, starts that day.
-- Every day of the period with sessions has a row; averages are 0 on a day
-- without new users. Parameters and the period: period.sql.
WITH input_sessions AS (
  SELECT *, CAST(gs_session_start_date AS DATE) AS day
  FROM gs_game_session_ended
),
sessions AS (  -- the period's
  SELECT *
  FROM input_sessions
  WHERE day BETWEEN COALESCE(@from_date, (SELECT MIN(day) FROM input_sessions))
    AND COALESCE(@to_date, (SELECT MAX(day) FROM input_sessions))
),
new_days AS (
  SELECT
    first_days.user_id,
    COALESCE(CAST(players.registered_at AS DATE), first_days.first_day) AS new_day
  FROM (SELECT user_id, MIN(day) AS first_day FROM input_sessions GROUP BY user_id) AS first_days
  LEFT JOIN players USING (user_id)
),
user_days AS (
  SELECT day, user_id, COUNT(*) AS sessions, SUM(gs_session_length_seconds) AS seconds
  FROM sessions
  GROUP BY day, user_id
),
daily AS (
  SELECT
    day,
    SUM(CASE WHEN day = new_day THEN 1 ELSE 0 END) AS new_users,
    SUM(CASE WHEN day = new_day THEN sessions ELSE 0 END) AS sessions,
    SUM(CASE WHEN day = new_day THEN seconds ELSE 0 END) AS session_seconds
  FROM user_days
  JOIN new_days USING (user_id)
  GROUP BY day
)
SELECT
  day,
  new_users,
  sessions,
  session_seconds,
  COALESCE(ROUND(SAFE_DIVIDE(CAST(sessions AS NUMERIC), new_users), 2), 0) AS avg_sessions_per_new_user,
  COALESCE(ROUND(SAFE_DIVIDE(CAST(session_seconds AS NUMERIC), new_users), 2), 0)
    AS avg_session_seconds_per_new_user
FROM daily
ORDER BY day
