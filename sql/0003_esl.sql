-- esl_workers: what the inbound ESL watchers learn from every node, and the commands sent to them.
-- Same multi-master rules as 0001: app-made UUID keys, no sequences, created_at/updated_at on every
-- row, idempotency by natural unique keys (a replayed event or spooled CDR lands on the same row).

-- Calls in progress, one row per channel (leg): keyed by (node, channel uuid), never by SIP Call-ID.
CREATE TABLE esl_live_calls (
    id             uuid PRIMARY KEY,
    node_id        uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    channel_uuid   text NOT NULL,
    call_uuid      text NOT NULL DEFAULT '',       -- Channel-Call-UUID: groups the legs of one call
    tenant_id      uuid REFERENCES tenants (id) ON DELETE SET NULL,
    direction      text NOT NULL DEFAULT '',       -- inbound | outbound (as FreeSWITCH sees the leg)
    state          text NOT NULL DEFAULT 'created',  -- created | answered | bridged
    channel_name   text NOT NULL DEFAULT '',
    caller_number  text NOT NULL DEFAULT '',
    caller_name    text NOT NULL DEFAULT '',
    destination    text NOT NULL DEFAULT '',
    other_leg_uuid text NOT NULL DEFAULT '',
    sip_call_id    text NOT NULL DEFAULT '',
    started_at     timestamptz,
    answered_at    timestamptz,
    bridged_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (node_id, channel_uuid)
);
CREATE INDEX esl_live_calls_tenant ON esl_live_calls (tenant_id);

-- One CDR per channel, written once: a replay (spool, reconnect) hits the unique key and is ignored.
CREATE TABLE esl_cdrs (
    id             uuid PRIMARY KEY,
    node_id        uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    channel_uuid   text NOT NULL,
    call_uuid      text NOT NULL DEFAULT '',
    tenant_id      uuid REFERENCES tenants (id) ON DELETE SET NULL,
    direction      text NOT NULL DEFAULT '',
    caller_number  text NOT NULL DEFAULT '',
    caller_name    text NOT NULL DEFAULT '',
    destination    text NOT NULL DEFAULT '',
    other_leg_uuid text NOT NULL DEFAULT '',
    sip_call_id    text NOT NULL DEFAULT '',
    started_at     timestamptz,
    answered_at    timestamptz,
    ended_at       timestamptz,
    duration       integer NOT NULL DEFAULT 0,     -- seconds from start to end
    billsec        integer NOT NULL DEFAULT 0,     -- seconds from answer to end
    hangup_cause   text NOT NULL DEFAULT '',
    variables      jsonb NOT NULL DEFAULT '{}',    -- the fsfarm_* channel variables, for billing add-ons
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (node_id, channel_uuid)
);
CREATE INDEX esl_cdrs_tenant_time ON esl_cdrs (tenant_id, started_at DESC);

-- SIP registrations as mod_sofia reports them (sofia::register / unregister / expire).
CREATE TABLE esl_registrations (
    id           uuid PRIMARY KEY,
    node_id      uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    tenant_id    uuid REFERENCES tenants (id) ON DELETE SET NULL,
    realm        text NOT NULL,
    username     text NOT NULL,
    call_id      text NOT NULL,                    -- one row per device registration
    contact      text NOT NULL DEFAULT '',
    network_ip   text NOT NULL DEFAULT '',
    network_port text NOT NULL DEFAULT '',
    user_agent   text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT '',
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (node_id, realm, username, call_id)
);
CREATE INDEX esl_registrations_tenant ON esl_registrations (tenant_id);

-- Who is in which conference room right now (conference::maintenance).
CREATE TABLE esl_conference_members (
    id              uuid PRIMARY KEY,
    node_id         uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    conference_name text NOT NULL,                 -- "<number>-<tenant domain>" as the dialplan names it
    member_id       integer NOT NULL,
    tenant_id       uuid REFERENCES tenants (id) ON DELETE SET NULL,
    channel_uuid    text NOT NULL DEFAULT '',
    caller_number   text NOT NULL DEFAULT '',
    caller_name     text NOT NULL DEFAULT '',
    can_hear        boolean NOT NULL DEFAULT true,
    can_speak       boolean NOT NULL DEFAULT true,
    is_moderator    boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (node_id, conference_name, member_id)
);
CREATE INDEX esl_conference_members_tenant ON esl_conference_members (tenant_id, conference_name);

-- Last heartbeat figures of each node (one row per node, overwritten).
CREATE TABLE esl_node_stats (
    id                uuid PRIMARY KEY,
    node_id           uuid NOT NULL UNIQUE REFERENCES nodes (id) ON DELETE CASCADE,
    session_count     integer NOT NULL DEFAULT 0,
    max_sessions      integer NOT NULL DEFAULT 0,
    sessions_per_sec  integer NOT NULL DEFAULT 0,
    session_peak_5min integer NOT NULL DEFAULT 0,
    idle_cpu          double precision NOT NULL DEFAULT 0,
    uptime_ms         bigint NOT NULL DEFAULT 0,
    version           text NOT NULL DEFAULT '',
    heartbeat_at      timestamptz,                 -- as the node stamped it
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Commands sent through the API/CLI; bgapi ones finish when their BACKGROUND_JOB arrives.
CREATE TABLE esl_command_jobs (
    id          uuid PRIMARY KEY,                  -- the Job-UUID we gave FreeSWITCH
    node_id     uuid REFERENCES nodes (id) ON DELETE CASCADE,
    tenant_id   uuid REFERENCES tenants (id) ON DELETE CASCADE,
    command     text NOT NULL,
    status      text NOT NULL DEFAULT 'pending',   -- pending | done | failed
    result      text NOT NULL DEFAULT '',
    finished_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (status IN ('pending', 'done', 'failed'))
);
