-- fsfarm foundation schema.
-- Multi-master rules (BDR-style logical replication between sites):
--   * primary keys are UUIDs made by the application: no sequences, no serial;
--   * every row carries created_at/updated_at, and updates set updated_at so the newest write wins;
--   * uniqueness that users rely on is a plain unique constraint; no trigger enforces cross-row rules.

CREATE TABLE nodes (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    switchname    text NOT NULL UNIQUE,            -- FreeSWITCH-Switchname / hostname it reports
    sip_address   text NOT NULL,                   -- host:port the SIP proxy sends to
    esl_address   text NOT NULL,                   -- host:port of mod_event_socket
    esl_password  text NOT NULL,                   -- needed to connect; never returned by the API
    rtp_port_min  integer NOT NULL,
    rtp_port_max  integer NOT NULL,
    capacity      integer NOT NULL,                -- relative weight for placement (e.g. max calls)
    spare         boolean NOT NULL DEFAULT false,  -- held back for failover: gets nothing until then
    admin_state   text NOT NULL DEFAULT 'active',  -- active | draining | disabled
    health        text NOT NULL DEFAULT 'unknown', -- unknown | up | suspect | down (written by esl_workers)
    health_reason text NOT NULL DEFAULT '',
    health_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (rtp_port_min > 0 AND rtp_port_max <= 65535 AND rtp_port_min < rtp_port_max),
    CHECK (capacity > 0),
    CHECK (admin_state IN ('active', 'draining', 'disabled')),
    CHECK (health IN ('unknown', 'up', 'suspect', 'down'))
);

CREATE TABLE tenants (
    id             uuid PRIMARY KEY,
    domain         text NOT NULL UNIQUE,           -- the SIP domain, lower case
    name           text NOT NULL,
    pinned_node_id uuid REFERENCES nodes (id) ON DELETE SET NULL,
    enabled        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    extension        text NOT NULL,
    display_name     text NOT NULL DEFAULT '',
    a1_hash          text NOT NULL,                -- md5(extension:domain:password); no plaintext kept
    caller_id_name   text NOT NULL DEFAULT '',
    caller_id_number text NOT NULL DEFAULT '',
    toll_allow       text[] NOT NULL DEFAULT '{local}',
    accountcode      text NOT NULL DEFAULT '',
    ring_timeout     integer NOT NULL DEFAULT 25,
    voicemail        boolean NOT NULL DEFAULT true,
    vm_a1_hash       text NOT NULL DEFAULT '',     -- md5(extension:domain:pin), what mod_voicemail checks
    vm_email         text NOT NULL DEFAULT '',
    enabled          boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, extension)
);

CREATE TABLE conferences (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number         text NOT NULL,                  -- what callers dial inside the tenant
    name           text NOT NULL,
    profile        text NOT NULL DEFAULT 'wideband',  -- narrowband 8 kHz | wideband 16 kHz | hd 48 kHz
    pin            text NOT NULL DEFAULT '',       -- checked by FreeSWITCH's conference app; never returned
    max_members    integer NOT NULL DEFAULT 50,
    record         boolean NOT NULL DEFAULT false,
    pinned_node_id uuid REFERENCES nodes (id) ON DELETE SET NULL,
    state          jsonb NOT NULL DEFAULT '{}',    -- live room state, enough to recreate it elsewhere
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, number),
    CHECK (profile IN ('narrowband', 'wideband', 'hd')),
    CHECK (max_members > 0)
);

CREATE TABLE ivrs (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,                     -- the name a script registers with @ivr("name")
    extension   text NOT NULL DEFAULT '',          -- optional internal number reaching it
    description text NOT NULL DEFAULT '',
    options     jsonb NOT NULL DEFAULT '{}',       -- handed to the script (menus, targets...)
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE gateways (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL,
    proxy            text NOT NULL,                -- host[:port] of the carrier
    username         text NOT NULL DEFAULT '',
    password         text NOT NULL DEFAULT '',     -- the carrier needs it in clear; never returned
    register         boolean NOT NULL DEFAULT false,
    caller_id_number text NOT NULL DEFAULT '',     -- outbound caller-id presented to the carrier
    caller_id_name   text NOT NULL DEFAULT '',
    dial_pattern     text NOT NULL DEFAULT '^\+?[0-9]{7,15}$',  -- numbers routed out through it
    strip_plus       boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE numbers (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number      text NOT NULL UNIQUE,              -- the DID in E.164 digits, optional leading +
    target_type text NOT NULL,                     -- user | conference | ivr | voicemail
    target      text NOT NULL,                     -- extension, conference number or IVR name
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (target_type IN ('user', 'conference', 'ivr', 'voicemail'))
);

CREATE TABLE mixers (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    sip_address text NOT NULL,                     -- host:port FreeSWITCH bridges room legs to
    control_url text NOT NULL,                     -- http://host:port of its control API
    capacity    integer NOT NULL DEFAULT 500,
    admin_state text NOT NULL DEFAULT 'active',
    health      text NOT NULL DEFAULT 'unknown',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (capacity > 0),
    CHECK (admin_state IN ('active', 'draining', 'disabled')),
    CHECK (health IN ('unknown', 'up', 'suspect', 'down'))
);

-- One row per placement run that changed something; readers take the highest generation.
-- Two sites could both write generation N: (generation, created_at, id) orders them all the same way.
CREATE TABLE placement_generations (
    id         uuid PRIMARY KEY,
    generation bigint NOT NULL,
    reason     text NOT NULL,
    moved      integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX placement_generations_generation ON placement_generations (generation DESC);

-- Where each tenant runs now (node) and where each conference runs (node or mixer).
CREATE TABLE tenant_placements (
    tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    node_id    uuid REFERENCES nodes (id) ON DELETE SET NULL,  -- NULL: no live node can take it
    generation bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_placements_node ON tenant_placements (node_id);

CREATE TABLE conference_placements (
    conference_id uuid PRIMARY KEY REFERENCES conferences (id) ON DELETE CASCADE,
    node_id       uuid REFERENCES nodes (id) ON DELETE SET NULL,
    mixer_id      uuid REFERENCES mixers (id) ON DELETE SET NULL,
    generation    bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    token_hash   text NOT NULL UNIQUE,             -- sha256 of the bearer token; the token itself is shown once
    scope        text NOT NULL,                    -- farm-admin | tenant-admin | node-join
    tenant_id    uuid REFERENCES tenants (id) ON DELETE CASCADE,
    label        text NOT NULL DEFAULT '',
    expires_at   timestamptz,
    revoked      boolean NOT NULL DEFAULT false,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (scope IN ('farm-admin', 'tenant-admin', 'node-join')),
    CHECK ((scope = 'tenant-admin') = (tenant_id IS NOT NULL))
);
