-- Shared storage metadata (voicemail) and node self-registration.
-- Same multi-master rules as 0001: app-made UUID keys, no sequences, created_at/updated_at.

-- One row per voicemail message; the audio lives in shared storage at
-- <tenant-id>/voicemail/<extension>/<id>.wav and the row is written only after the file is stored.
CREATE TABLE voicemail_messages (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    extension        text NOT NULL,                 -- the mailbox, kept for paths and listings
    path             text NOT NULL,                 -- relative to <tenant-id>/voicemail/
    caller_id_number text NOT NULL DEFAULT '',
    caller_id_name   text NOT NULL DEFAULT '',
    duration_ms      integer NOT NULL,
    size_bytes       bigint NOT NULL,
    sample_rate      integer NOT NULL,
    read_at          timestamptz,                   -- NULL: new message
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, path),
    CHECK (duration_ms >= 0 AND size_bytes >= 0)
);
CREATE INDEX voicemail_messages_mailbox ON voicemail_messages (tenant_id, user_id, created_at DESC);

-- A node that joined by itself waits in 'pending' (takes no tenants) until its first heartbeat.
ALTER TABLE nodes DROP CONSTRAINT nodes_admin_state_check;
ALTER TABLE nodes ADD CONSTRAINT nodes_admin_state_check
    CHECK (admin_state IN ('active', 'draining', 'disabled', 'pending'));

-- A node-join token is single use: this row is the proof it was spent, and by which node.
CREATE TABLE node_joins (
    token_id   uuid PRIMARY KEY REFERENCES api_tokens (id) ON DELETE CASCADE,
    node_id    uuid REFERENCES nodes (id) ON DELETE SET NULL,
    node_name  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
