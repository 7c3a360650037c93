variable "hcloud_token" {
  description = "Hetzner Cloud API token."
  type        = string
  sensitive   = true
}

variable "failover_hcloud_token" {
  description = "Hetzner Cloud API token the controller fences nodes and moves floating IPs with (written to its /usr/local/sbin/fsfarm-failover); empty means `hcloud_token`."
  type        = string
  default     = ""
  sensitive   = true
}

variable "name_prefix" {
  description = "Prefix of every server name, e.g. 'fsfarm' gives fsfarm-fs1, fsfarm-ctl1."
  type        = string
  default     = "fsfarm"
}

variable "location" {
  description = "Hetzner location of every server."
  type        = string
  default     = "fsn1"
}

variable "image" {
  description = "Server image (Debian 12: the packages the user-data installs are Debian's)."
  type        = string
  default     = "debian-12"
}

variable "network_cidr" {
  description = "Private network of the farm."
  type        = string
  default     = "10.42.0.0/16"
}

variable "subnet_cidr" {
  description = "Subnet the servers get their private addresses from."
  type        = string
  default     = "10.42.1.0/24"
}

variable "node_count" {
  description = "FreeSWITCH nodes that take tenants. Lowering it removes the highest-numbered nodes: drain them first (see README)."
  type        = number
  default     = 2
}

variable "spare_count" {
  description = "FreeSWITCH spares held back for failover."
  type        = number
  default     = 1
}

variable "gluster_count" {
  description = "GlusterFS servers (1 for a test farm; 2 or 3 for a replicated volume)."
  type        = number
  default     = 2
}

variable "postgres_count" {
  description = "PostgreSQL/Patroni + etcd members (3 for a real quorum)."
  type        = number
  default     = 3
}

variable "node_type" {
  description = "Server type of FreeSWITCH nodes and spares."
  type        = string
  default     = "cpx31"
}

variable "controller_type" {
  description = "Server type of the controller."
  type        = string
  default     = "cpx21"
}

variable "kamailio_type" {
  description = "Server type of the Kamailio SIP edge."
  type        = string
  default     = "cpx11"
}

variable "postgres_type" {
  description = "Server type of the database members."
  type        = string
  default     = "cpx21"
}

variable "gluster_type" {
  description = "Server type of the GlusterFS servers."
  type        = string
  default     = "cpx21"
}

variable "ssh_keys" {
  description = "Names of Hetzner SSH keys put on every server."
  type        = list(string)
  default     = []
}

variable "ssh_authorized_keys" {
  description = "Public keys also written by cloud-init (for images without Hetzner's key injection)."
  type        = list(string)
  default     = []
}

variable "join_tokens" {
  description = "One single-use node-join token per FreeSWITCH node and spare, keyed by node name (fs1, fs2, spare1...): `fsfarm token create --scope node-join`."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "freeswitch_apt_source" {
  description = "Your APT source line for FreeSWITCH packages (signed-by=/usr/share/keyrings/freeswitch.asc)."
  type        = string
}

variable "freeswitch_apt_key" {
  description = "ASCII-armored signing key of that source."
  type        = string
  default     = ""
}

variable "fsfarm_pip_spec" {
  description = "What the controller installs with pip."
  type        = string
  default     = "fsfarm"
}

variable "xml_curl_credentials" {
  description = "user:password FreeSWITCH nodes send to xml_curl (set the controller's FSFARM_XMLCURL_PASSWORD to match)."
  type        = string
  sensitive   = true
}

variable "postgres_superuser_password" {
  description = "Password of the postgres superuser Patroni sets."
  type        = string
  sensitive   = true
}

variable "postgres_replication_password" {
  description = "Password of Patroni's replication user."
  type        = string
  sensitive   = true
}
