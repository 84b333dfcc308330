-- Chart 3: Daily trend - avg bet count per session (all currencies: a count).
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
  SUM(gs_bets_count) AS bets,
  ROUND(SAFE_DIVIDE(CAST(SUM(gs_bets_count) AS NUMERIC), COUNT(*)), 2) AS avg_bets_per_session
FROM sessions
GROUP BY day
ORDER BY day
