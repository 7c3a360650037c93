-- A spare taking a dead node's address and calls (issue 13).
-- nodes.heir_id: the node that now answers at this node's SIP and media address (an extra SIP
-- profile there, which recovered this node's calls); NULL once the address is released again.
ALTER TABLE nodes ADD COLUMN heir_id uuid REFERENCES nodes (id) ON DELETE SET NULL;
-- What a failover did with the dead node's address and calls: whether its heir took the address
-- (and why or why not), how many answered call legs the node's sofia tracked, which legs the heir
-- brought back with `sofia recover`, and how many registrations it took over.
ALTER TABLE failovers ADD COLUMN takeover text NOT NULL DEFAULT '';
ALTER TABLE failovers ADD COLUMN calls_tracked integer NOT NULL DEFAULT 0;
ALTER TABLE failovers ADD COLUMN calls_recovered integer NOT NULL DEFAULT 0;
ALTER TABLE failovers ADD COLUMN recovered_legs text[] NOT NULL DEFAULT '{}';
ALTER TABLE failovers ADD COLUMN registrations_moved integer NOT NULL DEFAULT 0;
