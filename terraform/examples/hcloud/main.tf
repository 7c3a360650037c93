# An example fsfarm farm on Hetzner Cloud: controller, Kamailio, PostgreSQL/Patroni, GlusterFS,
# FreeSWITCH nodes and spares on one private network, every machine configured by cloud_init.

locals {
  host_offset = {
    controller = 10
    kamailio   = 20
    postgres   = 30
    gluster    = 40
    node       = 100
    spare      = 200
  }
  controller_ip = cidrhost(var.subnet_cidr, local.host_offset.controller)
  postgres_ips  = [for i in range(var.postgres_count) : cidrhost(var.subnet_cidr, local.host_offset.postgres + i)]
  gluster_names = [for i in range(var.gluster_count) : "${var.name_prefix}-gfs${i + 1}"]
  gluster_ips   = [for i in range(var.gluster_count) : cidrhost(var.subnet_cidr, local.host_offset.gluster + i)]
  nodes = merge(
    { for i in range(var.node_count) : "fs${i + 1}" => { role = "freeswitch", ip = cidrhost(var.subnet_cidr, local.host_offset.node + i) } },
    { for i in range(var.spare_count) : "spare${i + 1}" => { role = "spare", ip = cidrhost(var.subnet_cidr, local.host_offset.spare + i) } },
  )
  # The controller fences a dead node and moves its floating IP to the heir with the hcloud CLI.
  failover_script = templatefile("${path.module}/failover.sh.tftpl", {
    hcloud_token = var.failover_hcloud_token != "" ? var.failover_hcloud_token : var.hcloud_token
    name_prefix  = var.name_prefix
  })
  database_url   = "postgresql://postgres:${var.postgres_superuser_password}@${join(",", [for ip in local.postgres_ips : "${ip}:5432"])}/postgres?target_session_attrs=read-write"
  controller_url = "http://${local.controller_ip}:8080"
}

resource "hcloud_network" "farm" {
  name     = "${var.name_prefix}-net"
  ip_range = var.network_cidr
}

resource "hcloud_network_subnet" "farm" {
  network_id   = hcloud_network.farm.id
  type         = "cloud"
  network_zone = "eu-central"
  ip_range     = var.subnet_cidr
}

module "controller_init" {
  source               = "../../modules/cloud_init"
  role                 = "controller"
  hostname             = "${var.name_prefix}-ctl1"
  ssh_authorized_keys  = var.ssh_authorized_keys
  database_url         = local.database_url
  gluster_servers      = local.gluster_ips
  fsfarm_pip_spec      = var.fsfarm_pip_spec
  xml_curl_credentials = var.xml_curl_credentials
  extra_packages       = ["hcloud-cli"]
  failover_script      = local.failover_script
  fence_command        = "/usr/local/sbin/fsfarm-failover fence {name}"
  address_command      = "/usr/local/sbin/fsfarm-failover address {address} {heir}"
}

module "kamailio_init" {
  source              = "../../modules/cloud_init"
  role                = "kamailio"
  hostname            = "${var.name_prefix}-sip1"
  ssh_authorized_keys = var.ssh_authorized_keys
  database_url        = local.database_url
  controller_url      = local.controller_url
}

module "postgres_init" {
  source                        = "../../modules/cloud_init"
  count                         = var.postgres_count
  role                          = "postgres"
  hostname                      = "${var.name_prefix}-pg${count.index + 1}"
  advertise_address             = local.postgres_ips[count.index]
  postgres_members              = local.postgres_ips
  postgres_superuser_password   = var.postgres_superuser_password
  postgres_replication_password = var.postgres_replication_password
  ssh_authorized_keys           = var.ssh_authorized_keys
}

module "gluster_init" {
  source              = "../../modules/cloud_init"
  count               = var.gluster_count
  role                = "glusterfs"
  hostname            = local.gluster_names[count.index]
  advertise_address   = local.gluster_ips[count.index]
  gluster_servers     = local.gluster_ips
  ssh_authorized_keys = var.ssh_authorized_keys
}

# One floating IPv4 per FreeSWITCH node and spare: the address phones and Kamailio reach it at for SIP and
# media, which the controller moves to the heir when the node dies (see docs/terraform.md, Failover addresses).
resource "hcloud_floating_ip" "node" {
  for_each      = local.nodes
  name          = "${var.name_prefix}-${each.key}"
  type          = "ipv4"
  home_location = var.location
  labels        = { fsfarm_node = each.key }
}

module "node_init" {
  source                = "../../modules/cloud_init"
  for_each              = local.nodes
  role                  = each.value.role
  hostname              = each.key
  advertise_address     = each.value.ip
  sip_address           = hcloud_floating_ip.node[each.key].ip_address
  floating_addresses    = [for name in sort(keys(local.nodes)) : hcloud_floating_ip.node[name].ip_address]
  controller_url        = local.controller_url
  join_token            = lookup(var.join_tokens, each.key, "")
  freeswitch_apt_source = var.freeswitch_apt_source
  freeswitch_apt_key    = var.freeswitch_apt_key
  xml_curl_credentials  = var.xml_curl_credentials
  gluster_servers       = local.gluster_ips
  ssh_authorized_keys   = var.ssh_authorized_keys
}

resource "hcloud_server" "controller" {
  name        = "${var.name_prefix}-ctl1"
  server_type = var.controller_type
  image       = var.image
  location    = var.location
  ssh_keys    = var.ssh_keys
  user_data   = module.controller_init.user_data
  network {
    network_id = hcloud_network.farm.id
    ip         = local.controller_ip
  }
  depends_on = [hcloud_network_subnet.farm]
}

resource "hcloud_server" "kamailio" {
  name        = "${var.name_prefix}-sip1"
  server_type = var.kamailio_type
  image       = var.image
  location    = var.location
  ssh_keys    = var.ssh_keys
  user_data   = module.kamailio_init.user_data
  network {
    network_id = hcloud_network.farm.id
    ip         = cidrhost(var.subnet_cidr, local.host_offset.kamailio)
  }
  depends_on = [hcloud_network_subnet.farm]
}

resource "hcloud_server" "postgres" {
  count       = var.postgres_count
  name        = "${var.name_prefix}-pg${count.index + 1}"
  server_type = var.postgres_type
  image       = var.image
  location    = var.location
  ssh_keys    = var.ssh_keys
  user_data   = module.postgres_init[count.index].user_data
  network {
    network_id = hcloud_network.farm.id
    ip         = local.postgres_ips[count.index]
  }
  depends_on = [hcloud_network_subnet.farm]
}

resource "hcloud_server" "gluster" {
  count       = var.gluster_count
  name        = local.gluster_names[count.index]
  server_type = var.gluster_type
  image       = var.image
  location    = var.location
  ssh_keys    = var.ssh_keys
  user_data   = module.gluster_init[count.index].user_data
  network {
    network_id = hcloud_network.farm.id
    ip         = local.gluster_ips[count.index]
  }
  depends_on = [hcloud_network_subnet.farm]
}

resource "hcloud_server" "node" {
  for_each    = local.nodes
  name        = "${var.name_prefix}-${each.key}"
  server_type = var.node_type
  image       = var.image
  location    = var.location
  ssh_keys    = var.ssh_keys
  user_data   = module.node_init[each.key].user_data
  network {
    network_id = hcloud_network.farm.id
    ip         = each.value.ip
  }
  depends_on = [hcloud_network_subnet.farm, hcloud_server.controller, hcloud_server.gluster]

  labels = { fsfarm_node = each.key }

  # Removing a node (lower node_count) drains it first so its tenants move, then deletes it from
  # the controller. Needs FSFARM_URL and FSFARM_TOKEN (farm-admin) in the operator's environment.
  provisioner "local-exec" {
    when       = destroy
    on_failure = fail
    command    = "curl -fsS -X POST -H \"Authorization: Bearer $FSFARM_TOKEN\" \"$FSFARM_URL/api/v1/nodes/${self.labels.fsfarm_node}/drain\" && curl -fsS -X DELETE -H \"Authorization: Bearer $FSFARM_TOKEN\" \"$FSFARM_URL/api/v1/nodes/${self.labels.fsfarm_node}\""
  }

  lifecycle {
    # user_data holds a single-use join token: a new token must not rebuild a node that joined.
    ignore_changes = [user_data]
  }
}

resource "hcloud_floating_ip_assignment" "node" {
  for_each       = local.nodes
  floating_ip_id = hcloud_floating_ip.node[each.key].id
  server_id      = hcloud_server.node[each.key].id

  lifecycle {
    # After a failover the controller has moved the address to the heir: an apply must not move it back.
    ignore_changes = [server_id]
  }
}
