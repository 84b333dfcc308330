-- Chart 3: Daily trend - avg bet amount and avg bet count per session.
-- Per day: a session's total stake (real + bonus) and its number of bets,
-- averaged over the day's sessions.
SELECT
  CAST(gs_session_start_date AS DATE) AS day,
  COUNT(*) AS sessions,
  SUM(gs_bets_count) AS bets,
  ROUND(SUM(gs_total_bet_amount), 2) AS stake,
  ROUND(SAFE_DIVIDE(SUM(gs_total_bet_amount), COUNT(*)), 2) AS avg_stake_per_session,
  ROUND(SAFE_DIVIDE(CAST(SUM(gs_bets_count) AS NUMERIC), COUNT(*)), 2) AS avg_bets_per_session
FROM gs_game_session_ended
GROUP BY day
ORDER BY day
