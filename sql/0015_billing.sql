-- Prepaid billing (issue 15): rate decks and their rates, which deck a tenant is rated with from
-- when (and the margin it is resold at), accounts, and an append-only ledger. A balance is the SUM
-- of an account's ledger entries: no counter is updated in place, so two sites writing at once
-- (multi-master) only ever add rows. Money is numeric, never a float.

-- A rate deck: the farm's shared one (tenant_id NULL) or a tenant's own; all its rates in one currency.
CREATE TABLE rate_decks (
    id          uuid PRIMARY KEY,
    tenant_id   uuid REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rate_decks_owner_name_key UNIQUE NULLS NOT DISTINCT (tenant_id, name)
);

-- One destination of a deck: the longest matching prefix of the dialled number (E.164 digits) wins.
CREATE TABLE rates (
    id               uuid PRIMARY KEY,
    deck_id          uuid NOT NULL REFERENCES rate_decks (id) ON DELETE CASCADE,
    prefix           text NOT NULL CHECK (prefix ~ '^[0-9]{1,15}$'),
    description      text NOT NULL DEFAULT '',
    price_per_minute numeric(20, 6) NOT NULL CHECK (price_per_minute >= 0),
    connect_fee      numeric(20, 6) NOT NULL DEFAULT 0 CHECK (connect_fee >= 0),
    first_increment  integer NOT NULL DEFAULT 1 CHECK (first_increment BETWEEN 1 AND 3600),  -- seconds
    next_increment   integer NOT NULL DEFAULT 1 CHECK (next_increment BETWEEN 1 AND 3600),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (deck_id, prefix)
);

-- Which deck rates a tenant's calls from when: the newest assignment already in force wins, so a
-- new deck takes over at a set time. The margin (percent) is added to every price of the deck.
CREATE TABLE deck_assignments (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    deck_id        uuid NOT NULL REFERENCES rate_decks (id) ON DELETE RESTRICT,
    effective_from timestamptz NOT NULL,
    margin_percent numeric(9, 3) NOT NULL DEFAULT 0 CHECK (margin_percent BETWEEN 0 AND 100000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, effective_from)
);

-- A prepaid account: the tenant's own (user_id NULL) or one user's; a user's calls are paid from
-- the user's account when it has one, else from the tenant's.
CREATE TABLE billing_accounts (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid REFERENCES users (id) ON DELETE CASCADE,
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    low_balance numeric(20, 6) NOT NULL DEFAULT 0 CHECK (low_balance >= 0),  -- below it the balance reads "low"
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_accounts_owner_key UNIQUE NULLS NOT DISTINCT (tenant_id, user_id)
);

-- Money in (top-up, credit, a positive adjustment) and out (a rated call leg, a negative adjustment).
-- Never updated: a correction is another entry. ``reference`` is unique: 'call:<leg uuid>' makes rating a
-- leg twice impossible, whichever node, spool replay or site reports its CDR.
CREATE TABLE ledger_entries (
    id               uuid PRIMARY KEY,
    account_id       uuid NOT NULL REFERENCES billing_accounts (id) ON DELETE CASCADE,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('top-up', 'credit', 'adjustment', 'call')),
    amount           numeric(20, 6) NOT NULL,
    reference        text NOT NULL UNIQUE,
    note             text NOT NULL DEFAULT '',
    -- For a call: what was rated and how (the rated-CDR view reads these, no join).
    channel_uuid     text,
    node_id          uuid,
    destination      text NOT NULL DEFAULT '',
    prefix           text NOT NULL DEFAULT '',
    deck_id          uuid,
    billsec          integer NOT NULL DEFAULT 0,
    billed_seconds   integer NOT NULL DEFAULT 0,
    price_per_minute numeric(20, 6),
    answered_at      timestamptz,
    ended_at         timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'call') = (channel_uuid IS NOT NULL)),
    CHECK (kind NOT IN ('top-up', 'credit') OR amount > 0),
    CHECK (kind <> 'call' OR amount <= 0)
);
-- A balance is summed at every billed call's start: the amounts ride in the index (an index-only scan).
CREATE INDEX ledger_entries_account_time ON ledger_entries (account_id, created_at) INCLUDE (amount);
CREATE INDEX ledger_entries_tenant_calls ON ledger_entries (tenant_id, created_at DESC) WHERE kind = 'call';

-- The billed gateway legs up now (live state, like esl_live_calls): the authorisation of a new call
-- counts what they burn, the enforcement re-times them together. A row is written when the leg
-- answers (the ESL room) and deleted with its CDR, so it outlives a controller restart.
CREATE TABLE billing_legs_up (
    id               uuid PRIMARY KEY,
    channel_uuid     text NOT NULL UNIQUE,
    node_id          uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    account_id       uuid NOT NULL REFERENCES billing_accounts (id) ON DELETE CASCADE,
    prefix           text NOT NULL,
    price_per_minute numeric NOT NULL,  -- the tenant's price, margin included (more decimals than a rate)
    connect_fee      numeric NOT NULL,
    first_increment  integer NOT NULL,
    next_increment   integer NOT NULL,
    answered_at      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_legs_up_account ON billing_legs_up (account_id);
