-- Per-node WebRTC and NAT settings of its SIP profile (xml_curl renders them into sofia.conf).
-- ws_port/wss_port: sofia's SIP-over-WebSocket bindings on the node's SIP address (0: none; wss reads
-- wss.pem from the node's certs dir). ext_sip_ip/ext_rtp_ip: the public addresses put in SIP and SDP
-- ('' : the node's own SIP address; 'auto-nat' lets sofia learn them). stun_server: host:port asked for
-- both when they are ''. nat_acl: the ACL whose phones get NAT treatment (apply-nat-acl; '' : none).
-- ndlb: the sofia NDLB-* workarounds turned on for phones that need them.
ALTER TABLE nodes ADD COLUMN ws_port integer NOT NULL DEFAULT 0 CHECK (ws_port BETWEEN 0 AND 65535);
ALTER TABLE nodes ADD COLUMN wss_port integer NOT NULL DEFAULT 0 CHECK (wss_port BETWEEN 0 AND 65535);
ALTER TABLE nodes ADD COLUMN ext_sip_ip text NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN ext_rtp_ip text NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN stun_server text NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN nat_acl text NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN ndlb text[] NOT NULL DEFAULT '{}';
