-- Chart 5: Daily trend - acquisition quality.
-- A new user is a player on the day of their first session in the table.
-- Every day with sessions has a row; averages are 0 on a day without new users.
WITH user_days AS (
  SELECT
    CAST(gs_session_start_date AS DATE) AS day,
    user_id,
    COUNT(*) AS sessions,
    SUM(gs_session_length_seconds) AS seconds
  FROM gs_game_session_ended
  GROUP BY day, user_id
),
first_days AS (
  SELECT *, day = MIN(day) OVER (PARTITION BY user_id) AS is_new
  FROM user_days
),
daily AS (
  SELECT
    day,
    SUM(CASE WHEN is_new THEN 1 ELSE 0 END) AS new_users,
    SUM(CASE WHEN is_new THEN sessions ELSE 0 END) AS sessions,
    SUM(CASE WHEN is_new THEN seconds ELSE 0 END) AS session_seconds
  FROM first_days
  GROUP BY day
)
SELECT
  day,
  new_users,
  sessions,
  session_seconds,
  COALESCE(ROUND(SAFE_DIVIDE(CAST(sessions AS NUMERIC), new_users), 2), 0) AS avg_sessions_per_new_user,
  COALESCE(ROUND(SAFE_DIVIDE(CAST(session_seconds AS NUMERIC), new_users), 2), 0)
    AS avg_session_seconds_per_new_user
FROM daily
ORDER BY day
