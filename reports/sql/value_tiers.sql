-- Charts 6 and 7: players with sessions and sessions per player, by value tier.
-- With the operator's segments (any segment in the `players` table) a player's
-- tier is their segment, or 'Unsegmented'; the tiers are the segments named
-- Top, High, Medium, Low in that order, then the others by name, then
-- 'Unsegmented'. Otherwise a player's tier on a day comes from their stake over
-- the 30 days before it (history included, the day itself and later days never):
-- within each currency, players with a session in that window are ranked by it
-- (equal stakes share a rank); Top takes the first ceil(5%), High up to
-- ceil(20%), Medium up to ceil(50%), Low the rest and everyone without a
-- session in the window; a player with several currencies keeps the best tier.
-- Integer comparisons keep the cut exact. Every tier has a row every day of
-- the period with sessions, 0 when it had nobody. Parameters: period.sql.
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
report_days AS (
  SELECT DISTINCT day FROM sessions
),
daily_stakes AS (
  SELECT user_id, day, currency, SUM(gs_total_bet_amount) AS stake
  FROM input_sessions
  GROUP BY user_id, day, currency
),
past_stakes AS (
  SELECT report_days.day, daily_stakes.user_id, daily_stakes.currency, SUM(daily_stakes.stake) AS stake
  FROM report_days
  JOIN daily_stakes
    ON UNIX_DATE(daily_stakes.day) BETWEEN UNIX_DATE(report_days.day) - 30 AND UNIX_DATE(report_days.day) - 1
  GROUP BY report_days.day, daily_stakes.user_id, daily_stakes.currency
),
ranked AS (
  SELECT
    day,
    user_id,
    RANK() OVER (PARTITION BY day, currency ORDER BY stake DESC) - 1 AS ahead,
    COUNT(*) OVER (PARTITION BY day, currency) AS everyone
  FROM past_stakes
),
stake_tiers AS (
  SELECT
    day,
    user_id,
    MIN(CASE
      WHEN 100 * ahead < 5 * everyone THEN 1
      WHEN 100 * ahead < 20 * everyone THEN 2
      WHEN 100 * ahead < 50 * everyone THEN 3
      ELSE 4
    END) AS position
  FROM ranked
  GROUP BY day, user_id
),
stake_labels AS (
  SELECT 'Top' AS value_tier, 1 AS position UNION ALL
  SELECT 'High', 2 UNION ALL
  SELECT 'Medium', 3 UNION ALL
  SELECT 'Low', 4
),
segments AS (
  SELECT DISTINCT segment FROM players WHERE segment IS NOT NULL
),
labels AS (
  SELECT value_tier, ROW_NUMBER() OVER (ORDER BY known, value_tier) AS tier_rank
  FROM (
    SELECT segment AS value_tier, COALESCE(stake_labels.position, 5) AS known
    FROM segments
    LEFT JOIN stake_labels ON stake_labels.value_tier = segments.segment
    UNION ALL
    SELECT 'Unsegmented', 6 FROM (SELECT COUNT(*) AS n FROM segments) AS found WHERE n > 0
    UNION ALL
    SELECT value_tier, position FROM stake_labels, (SELECT COUNT(*) AS n FROM segments) AS found WHERE n = 0
  ) AS all_labels
),
user_days AS (
  SELECT
    played.day,
    played.user_id,
    played.sessions,
    CASE
      WHEN found.segment_count > 0 THEN COALESCE(players.segment, 'Unsegmented')
      ELSE stake_labels.value_tier
    END AS value_tier
  FROM (SELECT day, user_id, COUNT(*) AS sessions FROM sessions GROUP BY day, user_id) AS played
  CROSS JOIN (SELECT COUNT(*) AS segment_count FROM segments) AS found
  LEFT JOIN players ON players.user_id = played.user_id
  LEFT JOIN stake_tiers ON stake_tiers.day = played.day AND stake_tiers.user_id = played.user_id
  JOIN stake_labels ON stake_labels.position = COALESCE(stake_tiers.position, 4)
),
tier_days AS (
  SELECT day, value_tier, COUNT(*) AS users_with_sessions, SUM(sessions) AS sessions
  FROM user_days
  GROUP BY day, value_tier
)
SELECT
  report_days.day,
  labels.value_tier,
  labels.tier_rank,
  COALESCE(tier_days.users_with_sessions, 0) AS users_with_sessions,
  COALESCE(tier_days.sessions, 0) AS sessions,
  COALESCE(ROUND(SAFE_DIVIDE(CAST(tier_days.sessions AS NUMERIC), tier_days.users_with_sessions), 2), 0)
    AS avg_sessions_per_user
FROM report_days
CROSS JOIN labels
LEFT JOIN tier_days
  ON tier_days.day = report_days.day AND tier_days.value_tier = labels.value_tier
ORDER BY report_days.day, labels.tier_rank
