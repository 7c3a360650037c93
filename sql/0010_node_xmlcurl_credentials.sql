-- Each node's own xml_curl basic-auth credentials: the user it sends and the sha256 of its random
-- secret (the secret itself is shown once, when issued or rotated). Empty: none issued yet.
ALTER TABLE nodes ADD COLUMN xmlcurl_user text NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN xmlcurl_secret_hash text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX nodes_xmlcurl_secret_hash_key ON nodes (xmlcurl_secret_hash) WHERE xmlcurl_secret_hash <> '';
