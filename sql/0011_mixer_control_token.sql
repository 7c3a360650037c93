-- The bearer token the controller sends to each mixer's control API (the mixer refuses control
-- requests without it). Kept in clear: the controller must send it. Empty: registered before tokens.
ALTER TABLE mixers ADD COLUMN control_token text NOT NULL DEFAULT '';
