-- Chart 1: Daily trend - session length (sec).
-- Per day (UTC date of the session start): players with a session, sessions,
-- the median over the day's players of their daily play time (sum of their
-- session lengths), and the median single session length.
-- Parameters and the period: period.sql.
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
user_days AS (
  SELECT day, user_id, COUNT(*) AS sessions, SUM(gs_session_length_seconds) AS seconds
  FROM sessions
  GROUP BY day, user_id
),
user_medians AS (
  SELECT DISTINCT day, PERCENTILE_CONT(seconds, 0.5) OVER (PARTITION BY day) AS median
  FROM user_days
),
session_medians AS (
  SELECT DISTINCT day, PERCENTILE_CONT(gs_session_length_seconds, 0.5) OVER (PARTITION BY day) AS median
  FROM sessions
),
daily AS (
  SELECT day, COUNT(*) AS users_with_sessions, SUM(sessions) AS sessions
  FROM user_days
  GROUP BY day
)
SELECT
  day,
  daily.users_with_sessions,
  daily.sessions,
  -- medians of whole seconds are whole or halves: exact in FLOAT64 and NUMERIC
  ROUND(CAST(user_medians.median AS NUMERIC), 2) AS median_user_session_seconds,
  ROUND(CAST(session_medians.median AS NUMERIC), 2) AS median_session_length_seconds
FROM daily
JOIN user_medians USING (day)
JOIN session_medians USING (day)
ORDER BY day
