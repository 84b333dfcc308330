-- Chart 4: Daily trend - avg of unique games count per session.
-- gs_all_game_ids holds each of a session's games once.
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
  COUNT(*) AS sessions,
  SUM(ARRAY_LENGTH(gs_all_game_ids)) AS session_games,
  ROUND(SAFE_DIVIDE(CAST(SUM(ARRAY_LENGTH(gs_all_game_ids)) AS NUMERIC), COUNT(*)), 2)
    AS avg_unique_games_per_session
FROM sessions
GROUP BY day
ORDER BY day
