-- When a node was last heard from alive (its watcher judged it up). A node never seen alive is not a
-- dead node: its refused ESL connection means "not started yet", so it is not failed over.
ALTER TABLE nodes ADD COLUMN seen_alive_at timestamptz;
