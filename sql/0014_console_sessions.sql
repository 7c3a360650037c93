-- The web console's sign-ins: a browser exchanges a bearer token, or a tenant user's SIP credentials
-- (a user marked console_admin), for a session cookie. Only the cookie secret's SHA-256 is kept; the
-- CSRF token is per session. App-made UUID keys and no counters, so multi-master sites apply it alike.
CREATE TABLE console_sessions (
    id uuid PRIMARY KEY,
    secret_hash text NOT NULL UNIQUE,
    csrf_token text NOT NULL,
    scope text NOT NULL CHECK (scope IN ('farm-admin', 'tenant-admin')),
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    token_id uuid REFERENCES api_tokens (id) ON DELETE CASCADE,
    user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    label text NOT NULL DEFAULT '',
    expires_at timestamptz NOT NULL,
    revoked boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((scope = 'farm-admin') = (tenant_id IS NULL)),
    CHECK ((token_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- A tenant's user who may sign in to the console as its tenant's admin with its SIP password.
ALTER TABLE users ADD COLUMN console_admin boolean NOT NULL DEFAULT false;
