-- A node's failover history outlives the node: each row keeps the names of the dead node and
-- its spare, and deleting either node only clears the reference (no more cascade).
-- ALTERs only (no sequences, no data rewrite) so every multi-master site applies it the same way;
-- the names are written by the application (at decision and before a node is deleted).
ALTER TABLE failovers ADD COLUMN node_name text NOT NULL DEFAULT '';
ALTER TABLE failovers ADD COLUMN spare_name text NOT NULL DEFAULT '';
ALTER TABLE failovers ALTER COLUMN node_id DROP NOT NULL;
ALTER TABLE failovers DROP CONSTRAINT failovers_node_id_fkey;
ALTER TABLE failovers ADD CONSTRAINT failovers_node_id_fkey
    FOREIGN KEY (node_id) REFERENCES nodes (id) ON DELETE SET NULL;
