-- The reported period and the history before it (one row).
-- Parameters (DATE, NULL for an open end): @from_date, @to_date; the period
-- runs from @from_date, else the table's first day, to @to_date, else its last.
-- Sessions before the period are history: they only decide who is new and what
-- a player was worth. Table `players` is the operator's file (empty without one).
WITH input_sessions AS (
  SELECT CAST(gs_session_start_date AS DATE) AS day, currency
  FROM gs_game_session_ended
),
period AS (
  SELECT
    COALESCE(@from_date, MIN(day)) AS from_date,
    COALESCE(@to_date, MAX(day)) AS to_date,
    LEAST(COALESCE(MIN(day), @from_date), COALESCE(@from_date, MIN(day))) AS history_from
  FROM input_sessions
)
SELECT
  period.from_date,
  period.to_date,
  period.history_from,
  UNIX_DATE(period.from_date) - UNIX_DATE(period.history_from) AS history_days,
  COUNT(CASE WHEN input_sessions.day < period.from_date THEN 1 END) AS history_sessions,
  COUNT(CASE WHEN input_sessions.day BETWEEN period.from_date AND period.to_date THEN 1 END) AS sessions,
  -- sessions without a currency count as one more
  COUNT(DISTINCT CASE WHEN input_sessions.day BETWEEN period.from_date AND period.to_date
    THEN COALESCE(input_sessions.currency, '') END) AS currencies,
  (SELECT COUNT(registered_at) FROM players) AS registered_players,
  (SELECT COUNT(DISTINCT segment) FROM players) AS segments
FROM period
LEFT JOIN input_sessions ON TRUE
WHERE period.from_date IS NOT NULL AND period.to_date IS NOT NULL
GROUP BY period.from_date, period.to_date, period.history_from
