variable "role" {
  description = "What the machine is: freeswitch, spare, controller, kamailio, postgres or glusterfs."
  type        = string
  validation {
    condition     = contains(["freeswitch", "spare", "controller", "kamailio", "postgres", "glusterfs"], var.role)
    error_message = "role must be one of freeswitch, spare, controller, kamailio, postgres, glusterfs."
  }
}

variable "hostname" {
  description = "Host name; for FreeSWITCH roles also the node name and switchname it joins with."
  type        = string
}

variable "ssh_authorized_keys" {
  description = "Public SSH keys for the default user."
  type        = list(string)
  default     = []
}

variable "controller_url" {
  description = "Base URL FreeSWITCH nodes reach the controller at, e.g. http://10.0.1.10:8080."
  type        = string
  default     = ""
}

variable "join_token" {
  description = "Single-use node-join token (fsfarm token create --scope node-join); freeswitch and spare roles."
  type        = string
  default     = ""
  sensitive   = true
}

variable "advertise_address" {
  description = "Address the node registers for SIP and ESL; empty means the first address of `hostname -I`."
  type        = string
  default     = ""
}

variable "capacity" {
  description = "Placement weight the node registers with (e.g. its maximum concurrent calls)."
  type        = number
  default     = 1000
}

variable "freeswitch_apt_source" {
  description = "The operator's APT source line for FreeSWITCH packages, e.g. 'deb [signed-by=/usr/share/keyrings/freeswitch.asc] https://... bookworm main'."
  type        = string
  default     = ""
}

variable "freeswitch_apt_key" {
  description = "ASCII-armored key for that source, written to /usr/share/keyrings/freeswitch.asc."
  type        = string
  default     = ""
}

variable "freeswitch_packages" {
  description = "FreeSWITCH packages to install from that source."
  type        = list(string)
  default     = ["freeswitch-meta-vanilla"]
}

variable "freeswitch_conf_dir" {
  description = "FreeSWITCH configuration directory the join answer and bootstrap config are written to."
  type        = string
  default     = "/etc/freeswitch"
}

variable "xml_curl_url" {
  description = "URL FreeSWITCH fetches directory, dialplan and configuration from; empty means <controller_url>/xmlcurl."
  type        = string
  default     = ""
}

variable "xml_curl_credentials" {
  description = "user:password written into xml_curl.conf before the join replaces it with the node's own credentials; only the controller's shared FSFARM_XMLCURL_USER / PASSWORD, if set, is accepted."
  type        = string
  default     = ""
  sensitive   = true
}

variable "gluster_servers" {
  description = "GlusterFS servers (names or addresses); the first is the volfile server, the rest its backups."
  type        = list(string)
  default     = []
}

variable "gluster_volume" {
  description = "GlusterFS volume holding prompts, voicemail and recordings."
  type        = string
  default     = "fsfarm"
}

variable "gluster_brick_dir" {
  description = "Brick directory on GlusterFS servers."
  type        = string
  default     = "/srv/gluster/brick"
}

variable "shared_mount" {
  description = "Where FreeSWITCH nodes mount the volume with the FUSE client (the same path on every node)."
  type        = string
  default     = "/srv/fsfarm-shared"
}

variable "database_url" {
  description = "libpq DSN of the farm database for the controller (multi-host with target_session_attrs=read-write under Patroni)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "fsfarm_pip_spec" {
  description = "What the controller installs with pip, e.g. a wheel URL or 'fsfarm==0.1.0'."
  type        = string
  default     = "fsfarm"
}

variable "postgres_members" {
  description = "Addresses of the PostgreSQL/Patroni + etcd machines, in the same order on every member."
  type        = list(string)
  default     = []
}

variable "postgres_superuser_password" {
  description = "Password Patroni sets for the postgres superuser."
  type        = string
  default     = ""
  sensitive   = true
}

variable "postgres_replication_password" {
  description = "Password of the replication user Patroni creates."
  type        = string
  default     = ""
  sensitive   = true
}

variable "sip_address" {
  description = "freeswitch and spare roles: the address the node registers for SIP and media (a floating address that moves to its heir on failover); empty means `advertise_address`, which stays the ESL address."
  type        = string
  default     = ""
}

variable "floating_addresses" {
  description = "freeswitch and spare roles: every floating address of the farm's nodes, carried on lo so the node answers for whichever is routed to it (see docs/terraform.md, Failover addresses)."
  type        = list(string)
  default     = []
}

variable "fence_command" {
  description = "controller role: FSFARM_FENCE_COMMAND, stopping a dead or hung node for good ({name}, {switchname}, {sip_host}, {esl_host}); must succeed when the node is already off."
  type        = string
  default     = ""
}

variable "address_command" {
  description = "controller role: FSFARM_ADDRESS_COMMAND, moving a dead node's address to its heir ({address}, {heir}, {dead}, {name})."
  type        = string
  default     = ""
}

variable "failover_script" {
  description = "controller role: a script installed as /usr/local/sbin/fsfarm-failover (mode 0700) for those two commands to call, e.g. with the cloud's CLI and token."
  type        = string
  default     = ""
  sensitive   = true
}

variable "extra_packages" {
  description = "controller role: Debian packages installed besides fsfarm's own, e.g. the cloud's CLI the failover script uses."
  type        = list(string)
  default     = []
}
