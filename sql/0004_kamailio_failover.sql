-- What Kamailio reads (views over the farm's own tables, so there is nothing to keep in sync
-- and no sequence to replicate) and the failover decisions the controller takes.

-- A node's dispatcher set id: a stable integer derived from its UUID (Kamailio wants ints).
CREATE FUNCTION fsfarm_setid(node uuid) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT ('x' || substr(md5(node::text), 1, 7))::bit(28)::integer $$;

-- Kamailio checks table versions; its core parameter version_table points here.
CREATE VIEW kamailio_version (table_name, table_version) AS
    VALUES ('kamailio_dispatcher'::varchar(32), 4), ('kamailio_domains'::varchar(32), 2),
           ('kamailio_numbers'::varchar(32), 2);

-- One dispatcher set per node, holding that node alone; OPTIONS pings mark it up or down.
CREATE VIEW kamailio_dispatcher (id, setid, destination, flags, priority, attrs, description) AS
    SELECT fsfarm_setid(n.id), fsfarm_setid(n.id), 'sip:' || n.sip_address, 0, 0,
           'node=' || n.name, n.name
    FROM nodes n WHERE n.admin_state <> 'disabled';

-- SIP domain -> dispatcher set of the node its tenant is placed on (htable rows).
CREATE VIEW kamailio_domains (key_name, key_type, value_type, key_value, expires) AS
    SELECT t.domain, 0, 1, fsfarm_setid(p.node_id)::text, 0
    FROM tenants t JOIN tenant_placements p ON p.tenant_id = t.id
    WHERE t.enabled AND p.node_id IS NOT NULL;

-- DID (as carriers send it, with and without '+') -> set of its tenant's node.
CREATE VIEW kamailio_numbers (key_name, key_type, value_type, key_value, expires) AS
    SELECT v.key, 0, 1, fsfarm_setid(p.node_id)::text, 0
    FROM numbers d JOIN tenant_placements p ON p.tenant_id = d.tenant_id
    CROSS JOIN LATERAL (VALUES (d.number), (ltrim(d.number, '+'))) AS v(key)
    WHERE p.node_id IS NOT NULL
    GROUP BY v.key, p.node_id;

-- One row per node death: the unique (node, incident) makes the decision happen once even
-- when several controllers see the same death.
CREATE TABLE failovers (
    id             uuid PRIMARY KEY,
    node_id        uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    incident       text NOT NULL,                 -- when the node was declared down
    spare_id       uuid REFERENCES nodes (id) ON DELETE SET NULL,
    state          text NOT NULL DEFAULT 'decided',  -- decided | moved | done | failed
    reason         text NOT NULL,
    decided_by     text NOT NULL,
    tenants_moved  integer NOT NULL DEFAULT 0,
    rooms_total    integer NOT NULL DEFAULT 0,
    rooms_recreated integer NOT NULL DEFAULT 0,
    legs_total     integer NOT NULL DEFAULT 0,
    legs_recovered integer NOT NULL DEFAULT 0,
    generation     bigint,
    kamailio       text NOT NULL DEFAULT '',      -- reload outcome
    error          text NOT NULL DEFAULT '',
    detected_at    timestamptz,
    completed_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (node_id, incident),
    CHECK (state IN ('decided', 'moved', 'done', 'failed'))
);
