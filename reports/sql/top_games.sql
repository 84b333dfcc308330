-- Table 8: session length and retention per game, the 50 games with most players.
-- Time on a game = its segments. A changed event is a segment that ended with
-- a switch; the session's last segment has no changed event and runs from the
-- last switch (the latest changed event's end) to the session end, on that
-- switch's new game, or is the whole session when there was no switch.
-- Per user = per player and day with the game. Stickiness = share of a game's
-- players who came back to it on a later day of the period (a second session
-- the same evening is not a return). Only the period's sessions count.
-- Parameters and the period: period.sql.
WITH input_sessions AS (
  SELECT *, CAST(gs_session_start_date AS DATE) AS day
  FROM gs_game_session_ended
),
sessions AS (  -- the period's
  SELECT
    gs_gameplay_session_id AS session_id,
    user_id,
    day,
    gs_session_end_date AS ended_at,
    gs_session_length_seconds AS seconds,
    gs_all_game_ids
  FROM input_sessions
  WHERE day BETWEEN COALESCE(@from_date, (SELECT MIN(day) FROM input_sessions))
    AND COALESCE(@to_date, (SELECT MAX(day) FROM input_sessions))
),
switches AS (  -- only those of sessions that ended: an open session is not reported yet
  SELECT changed.*
  FROM gs_game_session_changed AS changed
  JOIN sessions ON sessions.session_id = changed.gs_gameplay_session_id
),
last_switches AS (
  SELECT session_id, game_id, switched_at
  FROM (
    SELECT
      gs_gameplay_session_id AS session_id,
      gs_game_new_id AS game_id,
      gs_session_end_date AS switched_at,
      ROW_NUMBER() OVER (
        PARTITION BY gs_gameplay_session_id
        ORDER BY gs_session_end_date DESC, gs_session_start_date DESC) AS latest
    FROM switches
  ) AS ordered
  WHERE latest = 1
),
segments AS (
  SELECT gs_gameplay_session_id AS session_id, gs_game_old_id AS game_id,
    gs_session_length_seconds AS seconds, gs_game_name AS game_name
  FROM switches
  UNION ALL
  SELECT last_switches.session_id, last_switches.game_id,
    CAST(FLOOR((UNIX_MILLIS(sessions.ended_at) - UNIX_MILLIS(last_switches.switched_at)) / 1000) AS BIGINT),
    NULL
  FROM last_switches
  JOIN sessions USING (session_id)
  UNION ALL
  SELECT sessions.session_id, game, sessions.seconds, NULL
  FROM sessions
  CROSS JOIN UNNEST(sessions.gs_all_game_ids) AS game  -- a session without switches has one game
  WHERE sessions.session_id NOT IN (SELECT session_id FROM last_switches)
),
session_games AS (
  SELECT session_id, game_id, SUM(seconds) AS seconds, MIN(game_name) AS game_name
  FROM segments
  GROUP BY session_id, game_id
),
plays AS (  -- one row per session and game
  SELECT sessions.user_id, sessions.day, game AS game_id, COALESCE(session_games.seconds, 0) AS seconds,
    session_games.game_name
  FROM sessions
  CROSS JOIN UNNEST(sessions.gs_all_game_ids) AS game
  LEFT JOIN session_games
    ON session_games.session_id = sessions.session_id AND session_games.game_id = game
),
player_games AS (
  SELECT game_id, user_id, COUNT(DISTINCT day) AS days
  FROM plays
  GROUP BY game_id, user_id
),
comebacks AS (
  SELECT game_id, COUNT(*) AS players, SUM(days) AS player_days,
    SUM(CASE WHEN days >= 2 THEN 1 ELSE 0 END) AS returning_players
  FROM player_games
  GROUP BY game_id
),
totals AS (
  SELECT game_id, COALESCE(MIN(game_name), game_id) AS game_name, COUNT(*) AS sessions,
    SUM(seconds) AS play_seconds
  FROM plays
  GROUP BY game_id
),
ranked AS (
  SELECT
    totals.*,
    comebacks.players,
    comebacks.returning_players,
    comebacks.player_days,
    ROW_NUMBER() OVER (ORDER BY comebacks.players DESC, totals.sessions DESC, totals.game_id) AS rank
  FROM totals
  JOIN comebacks USING (game_id)
)
SELECT
  rank,
  game_id,
  game_name,
  players,
  player_days,
  sessions,
  play_seconds,
  ROUND(SAFE_DIVIDE(CAST(sessions AS NUMERIC), player_days), 2) AS sessions_per_user,
  ROUND(SAFE_DIVIDE(CAST(play_seconds AS NUMERIC), player_days), 2) AS duration_per_user_seconds,
  returning_players,
  ROUND(SAFE_DIVIDE(CAST(100 * returning_players AS NUMERIC), players), 2) AS stickiness_pct
FROM ranked
WHERE rank <= 50
ORDER BY rank
