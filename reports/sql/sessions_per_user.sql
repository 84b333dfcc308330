-- Chart 2: Daily trend - sessions count and session length (sec) per user.
-- Per day: sessions and summed session seconds, each divided by the day's
-- players with a session (so the second is a player's daily play time).
-- NUMERIC keeps the division exact before rounding half away from zero.
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
)
SELECT
  day,
  COUNT(DISTINCT user_id) AS users_with_sessions,
  COUNT(*) AS sessions,
  SUM(gs_session_length_seconds) AS session_seconds,
  ROUND(SAFE_DIVIDE(CAST(COUNT(*) AS NUMERIC), COUNT(DISTINCT user_id)), 2) AS avg_sessions_per_user,
  ROUND(SAFE_DIVIDE(CAST(SUM(gs_session_length_seconds) AS NUMERIC), COUNT(DISTINCT user_id)), 2)
    AS avg_session_seconds_per_user
FROM sessions
GROUP BY day
ORDER BY day
