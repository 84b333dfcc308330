-- Charts 6 and 7: players with sessions and sessions per player, by value tier.
-- A player's tier comes from their stake over the whole table: ranked by it
-- (equal stakes share a rank), Top takes the first ceil(5%) of players, High
-- up to ceil(20%), Medium up to ceil(50%), Low the rest. Integer comparisons
-- keep the cut exact. Every tier has a row every day, 0 when it had nobody.
WITH sessions AS (
  SELECT user_id, CAST(gs_session_start_date AS DATE) AS day, gs_total_bet_amount AS stake
  FROM gs_game_session_ended
),
period_stakes AS (
  SELECT user_id, SUM(stake) AS stake
  FROM sessions
  GROUP BY user_id
),
ranked AS (
  SELECT user_id, RANK() OVER (ORDER BY stake DESC) - 1 AS ahead, COUNT(*) OVER () AS everyone
  FROM period_stakes
),
tiers AS (
  SELECT
    user_id,
    CASE
      WHEN 100 * ahead < 5 * everyone THEN 'Top'
      WHEN 100 * ahead < 20 * everyone THEN 'High'
      WHEN 100 * ahead < 50 * everyone THEN 'Medium'
      ELSE 'Low'
    END AS value_tier
  FROM ranked
),
tier_order AS (
  SELECT 'Top' AS value_tier, 1 AS position UNION ALL
  SELECT 'High', 2 UNION ALL
  SELECT 'Medium', 3 UNION ALL
  SELECT 'Low', 4
),
grid AS (
  SELECT days.day, tier_order.value_tier, tier_order.position
  FROM (SELECT DISTINCT day FROM sessions) AS days
  CROSS JOIN tier_order
),
tier_days AS (
  SELECT sessions.day, tiers.value_tier, COUNT(DISTINCT sessions.user_id) AS users_with_sessions,
    COUNT(*) AS sessions
  FROM sessions
  JOIN tiers USING (user_id)
  GROUP BY sessions.day, tiers.value_tier
)
SELECT
  grid.day,
  grid.value_tier,
  COALESCE(tier_days.users_with_sessions, 0) AS users_with_sessions,
  COALESCE(tier_days.sessions, 0) AS sessions,
  COALESCE(ROUND(SAFE_DIVIDE(CAST(tier_days.sessions AS NUMERIC), tier_days.users_with_sessions), 2), 0)
    AS avg_sessions_per_user
FROM grid
LEFT JOIN tier_days
  ON tier_days.day = grid.day AND tier_days.value_tier = grid.value_tier
ORDER BY grid.day, grid.position
