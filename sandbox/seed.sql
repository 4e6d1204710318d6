-- The sandbox's merchants_prod: the checklist's 11 Phase 4 tables plus schema_migrations, with realistic rows.
-- Run as app_user (the owner of the database and its public schema) in one transaction. All timestamps are UTC,
-- none is in the future, created_at <= updated_at, and some rows are from the last hour. Values are derived from
-- the row number (no random()), so every start seeds the same data relative to now().
BEGIN;
SET LOCAL TIME ZONE 'UTC';

CREATE TABLE schema_migrations (
    version     text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    success     boolean NOT NULL DEFAULT true
);

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    phone          text,
    full_name      text NOT NULL,
    password_hash  text NOT NULL,
    role           text NOT NULL DEFAULT 'customer',
    is_active      boolean NOT NULL DEFAULT true,
    last_login_at  timestamptz,
    totp_enabled   boolean NOT NULL DEFAULT false,   -- 2FA (seed 5.3: enabled for admin accounts)
    totp_secret    text,                             -- encrypted at rest (envelope "v1:" + base64 ciphertext)
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_created_at_idx ON users (created_at);

-- Admin actions (seed 5.3 Audit Logging): kept 400 days.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id     bigint NOT NULL,   -- no foreign key: the trail outlives a deleted user
    action       text NOT NULL,
    target       text NOT NULL,
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX audit_log_occurred_at_idx ON audit_log (occurred_at);
CREATE INDEX audit_log_actor_id_idx ON audit_log (actor_id);

CREATE TABLE merchants (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    slug         text NOT NULL UNIQUE,
    category     text NOT NULL,
    website_url  text NOT NULL,
    email        text NOT NULL,
    phone        text NOT NULL,
    city         text NOT NULL,
    country      char(2) NOT NULL DEFAULT 'US',
    status       text NOT NULL DEFAULT 'active',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchants_category_idx ON merchants (category);

CREATE TABLE campaigns (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id   bigint NOT NULL REFERENCES merchants (id),
    created_by    bigint NOT NULL REFERENCES users (id),
    name          text NOT NULL,
    status        text NOT NULL,
    channel       text NOT NULL,
    budget_cents  bigint NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_merchant_id_idx ON campaigns (merchant_id);
CREATE INDEX campaigns_created_by_idx ON campaigns (created_by);
CREATE INDEX campaigns_status_idx ON campaigns (status);

CREATE TABLE notifications (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id  bigint NOT NULL REFERENCES campaigns (id),
    user_id      bigint NOT NULL REFERENCES users (id),
    channel      text NOT NULL,
    status       text NOT NULL,
    sent_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_campaign_id_idx ON notifications (campaign_id);
CREATE INDEX notifications_user_id_idx ON notifications (user_id);
CREATE INDEX notifications_status_created_at_idx ON notifications (status, created_at);

CREATE TABLE campaign_analytics_daily (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id      bigint NOT NULL REFERENCES campaigns (id),
    day              date NOT NULL,
    impressions      integer NOT NULL,
    clicks           integer NOT NULL,
    conversions      integer NOT NULL,
    revenue_cents    bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, day)
);
CREATE INDEX campaign_analytics_daily_day_idx ON campaign_analytics_daily (day);

CREATE TABLE campaign_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id  bigint NOT NULL REFERENCES campaigns (id),
    user_id      bigint NOT NULL REFERENCES users (id),
    event_type   text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    properties   jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaign_events_campaign_id_idx ON campaign_events (campaign_id);
CREATE INDEX campaign_events_user_id_idx ON campaign_events (user_id);
CREATE INDEX campaign_events_occurred_at_idx ON campaign_events (occurred_at);

CREATE TABLE ml_model_versions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name  text NOT NULL,
    version     text NOT NULL,
    trained_at  timestamptz NOT NULL,
    metrics     jsonb NOT NULL DEFAULT '{}',
    is_active   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_name, version)
);

CREATE TABLE merchant_affinity_scores (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           bigint NOT NULL REFERENCES users (id),
    merchant_id       bigint NOT NULL REFERENCES merchants (id),
    model_version_id  bigint NOT NULL REFERENCES ml_model_versions (id),
    score             numeric(5, 4) NOT NULL,
    computed_at       timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, merchant_id)
);
CREATE INDEX merchant_affinity_scores_merchant_id_idx ON merchant_affinity_scores (merchant_id);
CREATE INDEX merchant_affinity_scores_model_version_id_idx ON merchant_affinity_scores (model_version_id);

CREATE TABLE optimal_send_times (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           bigint NOT NULL UNIQUE REFERENCES users (id),
    model_version_id  bigint NOT NULL REFERENCES ml_model_versions (id),
    channel           text NOT NULL,
    day_of_week       smallint NOT NULL,
    hour_utc          smallint NOT NULL,
    confidence        numeric(4, 3) NOT NULL,
    computed_at       timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX optimal_send_times_model_version_id_idx ON optimal_send_times (model_version_id);

CREATE TABLE campaign_optimizations (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id       bigint NOT NULL REFERENCES campaigns (id),
    model_version_id  bigint NOT NULL REFERENCES ml_model_versions (id),
    recommendation    text NOT NULL,
    parameters        jsonb NOT NULL DEFAULT '{}',
    expected_lift     numeric(5, 4) NOT NULL,
    status            text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaign_optimizations_campaign_id_idx ON campaign_optimizations (campaign_id);
CREATE INDEX campaign_optimizations_model_version_id_idx ON campaign_optimizations (model_version_id);

CREATE TABLE job_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_name       text NOT NULL,
    scheduled_for  timestamptz NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    status         text NOT NULL,
    rows_affected  integer,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_runs_job_name_started_at_idx ON job_runs (job_name, started_at DESC);

-- Migrations: the newest is the version the release expects (flows config: postgres.schema_version).
INSERT INTO schema_migrations (version, applied_at, success)
SELECT v, LEAST(to_timestamp(v, 'YYYYMMDDHH24MISS'), now() - make_interval(hours => 2 * (6 - n::int))), true
FROM unnest(ARRAY['20250915093000', '20251001090000', '20251020141500', '20251110103000', '20251205160000',
                  '20251231080000']) WITH ORDINALITY AS m(v, n);

-- 500 users: valid emails, E.164 phones, bcrypt hashes (cost 10, precomputed), a few ops/admin accounts.
INSERT INTO users (email, phone, full_name, password_hash, role, is_active, last_login_at, created_at, updated_at)
SELECT lower(first) || '.' || lower(last) || i || '@' || domain,
       '+1415555' || lpad(i::text, 4, '0'),
       first || ' ' || last,
       (ARRAY['$2b$10$t.6MKAeK4csm9tTXwLrm7.e4z4UWWOmVtUO/M.0PKe1MVq5P5OxsS',
              '$2b$10$Z7G3HEDh1GOQeimllAuCouHHK4b1p8kr/anzOYBrnJQE5JVnTn7Eu',
              '$2b$10$HBG7pIdt3aNXxjBUwLDxReEAXvpbnoFtMHA4V1XdnQZX2mW.8wYr6',
              '$2b$10$.pWQ2h8Z.5O5fMh.g0IGHuRdajtNP.A86WwLGay15IR2moI0xom9K'])[1 + i % 4],
       CASE WHEN i <= 3 THEN 'admin' WHEN i <= 10 THEN 'ops' WHEN i % 10 = 0 THEN 'merchant_admin' ELSE 'customer' END,
       i % 37 <> 0,
       CASE WHEN i % 3 = 0 THEN NULL ELSE updated_at END,
       created_at, updated_at
FROM (
    SELECT i, first, last, domain, created_at,
           created_at + (now() - created_at) * ((i * 17) % 100) / 100.0 AS updated_at
    FROM (
        SELECT i,
               (ARRAY['Ava','Liam','Maya','Noah','Sofia','Ethan','Zoe','Lucas','Aria','Mateo','Chloe','Kai'])[1 + i % 12] AS first,
               (ARRAY['Nguyen','Patel','Garcia','Kim','Smith','Okafor','Rossi','Chen','Silva','Haddad'])[1 + (i / 12) % 10] AS last,
               (ARRAY['example.com','example.org','mail.example.net','swipesavvy.test'])[1 + i % 4] AS domain,
               now() - CASE WHEN i % 25 = 0 THEN make_interval(mins => 1 + i % 58)
                            ELSE make_interval(days => (i * 37) % 400, mins => 60 + (i * 13) % 1380) END AS created_at
        FROM generate_series(1, 500) AS i
    ) base
) u
ORDER BY i;

-- Admins (ids 1-3) have 2FA, their TOTP secrets encrypted; ops users (4-10) too.
UPDATE users SET totp_enabled = true,
                 totp_secret = 'v1:' || encode(decode(md5('k1-' || id) || md5('k2-' || id), 'hex'), 'base64')
WHERE id <= 10;

-- 1200 audit log entries over the last 400 days, some in the last hour.
INSERT INTO audit_log (actor_id, action, target, occurred_at)
SELECT 1 + i % 10, (ARRAY['user.update','campaign.pause','merchant.approve','role.grant','settings.update'])[1 + i % 5],
       (ARRAY['user','campaign','merchant'])[1 + i % 3] || ':' || (1 + i % 50),
       now() - make_interval(mins => (i - 1) * 480 + 3)
FROM generate_series(1, 1200) AS i;

-- 50 merchants with https websites.
INSERT INTO merchants (name, slug, category, website_url, email, phone, city, status, created_at, updated_at)
SELECT name, slug, category, 'https://www.' || slug || '.example.com', 'hello@' || slug || '.example.com',
       '+1628555' || lpad((100 + i)::text, 4, '0'), city, CASE WHEN i % 17 = 0 THEN 'paused' ELSE 'active' END,
       created_at, created_at + (now() - created_at) * ((i * 29) % 100) / 100.0
FROM (
    SELECT i,
           adj || ' ' || noun AS name,
           lower(adj || '-' || noun) || '-' || i AS slug,
           (ARRAY['coffee','grocery','apparel','electronics','dining','fitness','books','travel'])[1 + i % 8] AS category,
           (ARRAY['San Francisco','Oakland','Austin','Seattle','Denver','Chicago','Boston'])[1 + i % 7] AS city,
           now() - make_interval(days => 30 + (i * 11) % 600, mins => (i * 7) % 1440) AS created_at
    FROM generate_series(1, 50) AS i,
         LATERAL (SELECT (ARRAY['Blue','Golden','Urban','Little','Green','Bright','North','Sunny','Copper','Maple'])[1 + i % 10] AS adj,
                         (ARRAY['Bean','Market','Threads','Circuit','Table','Studio','Pages','Trail'])[1 + (i / 10 + i) % 8] AS noun) n
) m
ORDER BY i;

-- 100 campaigns (created by ops users), none scheduled in the future.
INSERT INTO campaigns (merchant_id, created_by, name, status, channel, budget_cents, starts_at, ends_at, created_at, updated_at)
SELECT 1 + i % 50, 4 + i % 7,
       (ARRAY['Spring Sale','Loyalty Boost','Weekend Flash','New Customer Welcome','Holiday Deals','Win-back'])[1 + i % 6] || ' #' || i,
       status, (ARRAY['email','sms','push'])[1 + i % 3], 50000 + (i * 7919) % 950000,
       created_at + interval '1 day',
       CASE WHEN status = 'completed' THEN created_at + interval '15 days' END,
       created_at, now() - make_interval(hours => i % 24)
FROM (
    SELECT i, CASE WHEN i % 5 = 0 THEN 'completed' WHEN i % 11 = 0 THEN 'paused' ELSE 'active' END AS status,
           now() - make_interval(days => 20 + (i * 3) % 120) AS created_at
    FROM generate_series(1, 100) AS i
) c
ORDER BY i;

-- 2000 notifications over the last 30 days, some in the last hour.
INSERT INTO notifications (campaign_id, user_id, channel, status, sent_at, created_at, updated_at)
SELECT 1 + i % 100, 1 + (i * 7) % 500, (ARRAY['email','sms','push'])[1 + i % 3],
       (ARRAY['delivered','delivered','opened','clicked','sent','failed'])[1 + i % 6],
       created_at + interval '30 seconds', created_at, created_at + interval '30 seconds'
FROM (
    SELECT i, now() - CASE WHEN i % 40 = 0 THEN make_interval(mins => 2 + i % 55)
                           ELSE make_interval(days => i % 30, mins => 60 + (i * 13) % 1380) END AS created_at
    FROM generate_series(1, 2000) AS i
) n
ORDER BY created_at;

-- 30 days of daily analytics per campaign (yesterday and before: the 02:00 UTC aggregation job's output).
INSERT INTO campaign_analytics_daily (campaign_id, day, impressions, clicks, conversions, revenue_cents, created_at, updated_at)
SELECT c, d::date, imp, imp / (20 + c % 7), imp / (200 + c % 13), (imp / (200 + c % 13)) * (1500 + (c * 31) % 4000),
       LEAST(d + interval '1 day 2 hours', now()), LEAST(d + interval '1 day 2 hours 5 minutes', now())
FROM generate_series(1, 100) AS c,
     generate_series(current_date - 30, current_date - 1, interval '1 day') AS d,
     LATERAL (SELECT 800 + (c * 97 + extract(doy FROM d)::int * 13) % 4000 AS imp) x;

-- 6000 campaign events over the last 14 days.
INSERT INTO campaign_events (campaign_id, user_id, event_type, occurred_at, properties, created_at, updated_at)
SELECT 1 + i % 100, 1 + (i * 13) % 500, (ARRAY['impression','impression','impression','click','click','conversion','unsubscribe'])[1 + i % 7],
       ts, jsonb_build_object('device', (ARRAY['ios','android','web'])[1 + i % 3], 'session', md5(i::text)), ts, ts
FROM (SELECT i, now() - make_interval(mins => 1 + (i * 7) % (14 * 1440)) AS ts FROM generate_series(1, 6000) AS i) e
ORDER BY ts;

-- Model versions (the weekly retraining job's output): one active version per model.
INSERT INTO ml_model_versions (model_name, version, trained_at, metrics, is_active, created_at, updated_at)
SELECT model, 'v1.' || v || '.0', t, jsonb_build_object('auc', 0.80 + v * 0.01, 'rows', 120000 + v * 5000), v = 3, t, t
FROM unnest(ARRAY['merchant_affinity','optimal_send_time','campaign_optimizer']) AS model,
     generate_series(1, 3) AS v,
     LATERAL (SELECT date_trunc('week', now()) + interval '3 hours' - make_interval(weeks => 3 - v + CASE WHEN
              date_trunc('week', now()) + interval '3 hours' > now() THEN 1 ELSE 0 END) AS t) w
ORDER BY v, model;

-- Merchant affinity scores: 5 merchants per user (every 6 hours).
INSERT INTO merchant_affinity_scores (user_id, merchant_id, model_version_id, score, computed_at, created_at, updated_at)
SELECT u, 1 + (u * 7 + k * 11) % 50, mv.id, ((u * 31 + k * 17) % 1000) / 1000.0, t, t - interval '30 days', t
FROM generate_series(1, 500) AS u, generate_series(0, 4) AS k,
     (SELECT id FROM ml_model_versions WHERE model_name = 'merchant_affinity' AND is_active) mv,
     LATERAL (SELECT date_trunc('hour', now()) - make_interval(hours => extract(hour FROM now())::int % 6) AS t) x;

-- Optimal send times: one per user (04:00 UTC).
INSERT INTO optimal_send_times (user_id, model_version_id, channel, day_of_week, hour_utc, confidence, computed_at, created_at, updated_at)
SELECT u, mv.id, (ARRAY['email','sms','push'])[1 + u % 3], u % 7, (u * 5) % 24, 0.5 + (u % 50) / 100.0, t, t - interval '20 days', t
FROM generate_series(1, 500) AS u,
     (SELECT id FROM ml_model_versions WHERE model_name = 'optimal_send_time' AND is_active) mv,
     LATERAL (SELECT CASE WHEN now() >= date_trunc('day', now()) + interval '4 hours'
                          THEN date_trunc('day', now()) + interval '4 hours'
                          ELSE date_trunc('day', now()) - interval '20 hours' END AS t) x;

-- Campaign optimizations for active campaigns (05:00 UTC).
INSERT INTO campaign_optimizations (campaign_id, model_version_id, recommendation, parameters, expected_lift, status, created_at, updated_at)
SELECT c.id, mv.id, r.rec, jsonb_build_object('confidence', 0.6 + (c.id % 30) / 100.0), (5 + c.id % 20) / 100.0,
       (ARRAY['proposed','applied','rejected'])[1 + (c.id + r.n) % 3], t, t + interval '10 minutes'
FROM campaigns c
     CROSS JOIN LATERAL (VALUES (1, 'shift send time to the user''s optimal hour'), (2, 'raise budget on top segment')) AS r(n, rec)
     CROSS JOIN (SELECT id FROM ml_model_versions WHERE model_name = 'campaign_optimizer' AND is_active) mv
     CROSS JOIN LATERAL (SELECT CASE WHEN now() >= date_trunc('day', now()) + interval '5 hours 15 minutes'
                                     THEN date_trunc('day', now()) + interval '5 hours'
                                     ELSE date_trunc('day', now()) - interval '19 hours' END AS t) x
WHERE c.status = 'active' AND (r.n = 1 OR c.id % 3 = 0);

-- Job runs of the five scheduled Phase 4 jobs over the last 14 days, all successful.
INSERT INTO job_runs (job_name, scheduled_for, started_at, finished_at, status, rows_affected, created_at, updated_at)
SELECT job, s, s + interval '2 seconds', s + make_interval(secs => 2 + dur), 'success', n_rows, s,
       s + make_interval(secs => 2 + dur)
FROM (VALUES ('daily_analytics_aggregation', '1 day'::interval, '2 hours'::interval, 45, 3000),
             ('weekly_model_retraining', '7 days', '3 hours', 900, 120000),
             ('merchant_affinity_update', '6 hours', '0 hours', 120, 2500),
             ('optimal_send_time_calculation', '1 day', '4 hours', 60, 500),
             ('campaign_optimization_generation', '1 day', '5 hours', 30, 150)) AS j(job, period, offset_, dur, n_rows),
     LATERAL generate_series(CASE WHEN period = '7 days' THEN date_trunc('week', now()) - interval '14 days'
                                  ELSE date_trunc('day', now()) - interval '14 days' END + offset_,
                             now() - make_interval(secs => 2 + dur), period) AS s
ORDER BY s;

COMMIT;
ANALYZE;
