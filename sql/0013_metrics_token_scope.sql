-- A scrape-only bearer token for Prometheus: it reads /metrics and nothing else, so the token in
-- prometheus.yml cannot change the farm. ALTERs only, as every multi-master site applies them alike.
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_scope_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope_check
    CHECK (scope IN ('farm-admin', 'tenant-admin', 'node-join', 'metrics'));
