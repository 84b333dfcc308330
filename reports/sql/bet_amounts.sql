-- Chart 3: Daily trend - avg bet amount and stake per session, per currency:
-- amounts of different currencies never add up. Average bet = stake / bets;
-- stake per session = stake / sessions (stake = real + bonus). Money keeps the
-- amounts' 18 places (BIGNUMERIC): 2 would turn an average ETH bet into 0.
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
  currency,
  COUNT(*) AS sessions,
  SUM(gs_bets_count) AS bets,
  SUM(gs_total_bet_amount) AS stake,
  COALESCE(ROUND(SAFE_DIVIDE(SUM(gs_total_bet_amount), SUM(gs_bets_count)), 18), 0) AS avg_bet_amount,
  ROUND(SAFE_DIVIDE(SUM(gs_total_bet_amount), COUNT(*)), 18) AS avg_stake_per_session
FROM sessions
GROUP BY day, currency
ORDER BY day, currency IS NOT NULL, currency
