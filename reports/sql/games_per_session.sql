-- Chart 4: Daily trend - avg of unique games count per session.
-- gs_all_game_ids holds each of a session's games once.
SELECT
  CAST(gs_session_start_date AS DATE) AS day,
  COUNT(*) AS sessions,
  SUM(ARRAY_LENGTH(gs_all_game_ids)) AS session_games,
  ROUND(SAFE_DIVIDE(CAST(SUM(ARRAY_LENGTH(gs_all_game_ids)) AS NUMERIC), COUNT(*)), 2)
    AS avg_unique_games_per_session
FROM gs_game_session_ended
GROUP BY day
ORDER BY day
