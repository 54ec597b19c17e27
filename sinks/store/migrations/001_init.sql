-- facestream store, version 1: face sessions, per face-frame results, session summaries, API keys.
-- face_results is range-partitioned by capture time (one partition per UTC day, created by the
-- sink as data arrives) so it can grow to billions of rows and old days can be dropped cheaply.

CREATE TABLE sessions (
    face_key        text PRIMARY KEY,          -- session_id/track_id
    session_id      text NOT NULL,
    device_id       text NOT NULL,
    track_id        integer NOT NULL,
    first_capture   timestamptz NOT NULL,
    last_capture    timestamptz NOT NULL
);
CREATE INDEX sessions_session_idx ON sessions (session_id);
CREATE INDEX sessions_device_time_idx ON sessions (device_id, first_capture);
CREATE INDEX sessions_time_idx ON sessions (first_capture);

CREATE TABLE face_results (
    face_key            text NOT NULL,
    seq                 bigint NOT NULL,
    capture_time        timestamptz NOT NULL,
    session_id          text NOT NULL,
    device_id           text NOT NULL,
    track_id            integer NOT NULL,
    processed_time      timestamptz NOT NULL,
    session_started     timestamptz NOT NULL,
    session_frame       bigint NOT NULL,
    amusement           real NOT NULL,
    surprise            real NOT NULL,
    confusion           real NOT NULL,
    attention           real NOT NULL,
    engagement          real NOT NULL,
    engagement_phase    text NOT NULL,
    interaction_status  text NOT NULL,
    emotion             text NOT NULL,
    p_neutral           real,
    p_happy             real,
    p_sad               real,
    p_surprise          real,
    p_angry             real,
    p_fear              real,
    p_disgust           real,
    yaw                 real NOT NULL,
    pitch               real NOT NULL,
    roll                real NOT NULL,
    gaze_x              real NOT NULL,
    gaze_y              real NOT NULL,
    eye_openness        real NOT NULL,
    blink               boolean NOT NULL,
    blinks              integer NOT NULL,
    blendshapes         real[] NOT NULL,
    teacher             real[],
    -- (face_key, seq) identifies a face-frame; capture_time is part of the key only because a
    -- partitioned table's keys must include the partition column (it is fixed per frame).
    PRIMARY KEY (face_key, seq, capture_time)
) PARTITION BY RANGE (capture_time);
CREATE INDEX face_results_session_idx ON face_results (session_id, capture_time);
CREATE INDEX face_results_device_idx ON face_results (device_id, capture_time);

CREATE TABLE session_summaries (
    face_key          text NOT NULL,
    started           timestamptz NOT NULL,
    session_id        text NOT NULL,
    device_id         text NOT NULL,
    track_id          integer NOT NULL,
    ended             timestamptz NOT NULL,
    closed            timestamptz NOT NULL,
    frames            bigint NOT NULL,
    blinks            integer NOT NULL,
    engaged_s         real NOT NULL,
    mean_amusement    real NOT NULL,
    mean_surprise     real NOT NULL,
    mean_confusion    real NOT NULL,
    mean_attention    real NOT NULL,
    mean_engagement   real NOT NULL,
    max_amusement     real NOT NULL,
    max_surprise      real NOT NULL,
    max_confusion     real NOT NULL,
    closed_reason     text NOT NULL,
    PRIMARY KEY (face_key, started)
);
CREATE INDEX session_summaries_session_idx ON session_summaries (session_id);
CREATE INDEX session_summaries_device_idx ON session_summaries (device_id, started);

CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,            -- public part, shown in listings
    name          text NOT NULL,
    key_hash      text NOT NULL,               -- sha256 of the secret part; the secret is never stored
    namespace     text NOT NULL UNIQUE,        -- the Socket.IO namespace of this key's clients
    created       timestamptz NOT NULL DEFAULT now(),
    revoked       timestamptz
);

-- Analytics ------------------------------------------------------------------------------------

-- One row per face session seen in the results (live or closed).
CREATE VIEW session_overview AS
SELECT r.session_id, r.face_key, r.device_id, r.track_id,
       min(r.capture_time) AS first_capture, max(r.capture_time) AS last_capture,
       count(*) AS frames,
       avg(r.amusement) AS mean_amusement, avg(r.surprise) AS mean_surprise,
       avg(r.confusion) AS mean_confusion, avg(r.attention) AS mean_attention,
       avg(r.engagement) AS mean_engagement,
       avg(r.p_neutral) AS mean_neutral, avg(r.p_happy) AS mean_happy, avg(r.p_sad) AS mean_sad,
       avg(r.p_surprise) AS mean_surprise_emotion, avg(r.p_angry) AS mean_angry,
       avg(r.p_fear) AS mean_fear, avg(r.p_disgust) AS mean_disgust,
       mode() WITHIN GROUP (ORDER BY r.emotion) AS dominant_emotion,
       max(r.blinks) AS blinks,
       count(*) FILTER (WHERE r.engagement_phase = 'engaged') AS engaged_frames
FROM face_results r
GROUP BY r.session_id, r.face_key, r.device_id, r.track_id;

-- Per face and minute: mean emotions and cues, and the most frequent phase and status.
CREATE VIEW face_timeline_minute AS
SELECT r.session_id, r.face_key, date_trunc('minute', r.capture_time) AS minute,
       count(*) AS frames,
       avg(r.p_neutral) AS neutral, avg(r.p_happy) AS happy, avg(r.p_sad) AS sad,
       avg(r.p_surprise) AS surprise_emotion, avg(r.p_angry) AS angry, avg(r.p_fear) AS fear,
       avg(r.p_disgust) AS disgust,
       avg(r.amusement) AS amusement, avg(r.surprise) AS surprise, avg(r.confusion) AS confusion,
       avg(r.attention) AS attention, avg(r.engagement) AS engagement,
       mode() WITHIN GROUP (ORDER BY r.engagement_phase) AS engagement_phase,
       mode() WITHIN GROUP (ORDER BY r.interaction_status) AS interaction_status
FROM face_results r
GROUP BY r.session_id, r.face_key, date_trunc('minute', r.capture_time);

-- Engagement and attention in tenths, per device and day.
CREATE VIEW cue_distribution_daily AS
SELECT r.device_id, date_trunc('day', r.capture_time) AS day, 'engagement' AS metric,
       least(width_bucket(r.engagement, 0, 1, 10), 10) AS bucket, count(*) AS frames
FROM face_results r GROUP BY 1, 2, 3, 4
UNION ALL
SELECT r.device_id, date_trunc('day', r.capture_time), 'attention',
       least(width_bucket(r.attention, 0, 1, 10), 10), count(*)
FROM face_results r GROUP BY 1, 2, 3, 4;
