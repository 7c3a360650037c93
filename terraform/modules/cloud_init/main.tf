# User-data for each role of an fsfarm farm, rendered with templatefile() only.
# Templates use plain ${name} interpolation; every decision is made here, so they stay readable shell/YAML.

locals {
  is_freeswitch   = contains(["freeswitch", "spare"], var.role)
  gluster_primary = length(var.gluster_servers) > 0 ? var.gluster_servers[0] : ""
  gluster_backups = join(":", slice(var.gluster_servers, min(1, length(var.gluster_servers)), length(var.gluster_servers)))
  mount_options   = local.gluster_backups == "" ? "defaults,_netdev" : "defaults,_netdev,backup-volfile-servers=${local.gluster_backups}"
  self_address    = var.advertise_address != "" ? var.advertise_address : var.hostname
  member_index    = index(concat(var.postgres_members, [var.advertise_address]), var.advertise_address)
  etcd_cluster = join(",", [
    for i, address in var.postgres_members : "pg${i + 1}=http://${address}:2380"
  ])

  join_script = templatefile("${path.module}/templates/join.sh.tftpl", {
    controller_url    = trimsuffix(var.controller_url, "/")
    join_token        = var.join_token
    node_name         = var.hostname
    advertise_address = var.advertise_address
    sip_address       = var.sip_address
    capacity          = tostring(var.capacity)
    spare             = var.role == "spare" ? "true" : "false"
    conf_dir          = var.freeswitch_conf_dir
  })

  vars = {
    hostname             = var.hostname
    ssh_keys_json        = jsonencode(var.ssh_authorized_keys)
    join_script_b64      = base64encode(local.join_script)
    apt_source_json      = jsonencode("${var.freeswitch_apt_source}\n")
    apt_key_b64          = base64encode(var.freeswitch_apt_key)
    freeswitch_packages  = join(" ", var.freeswitch_packages)
    conf_dir             = var.freeswitch_conf_dir
    xml_curl_url         = var.xml_curl_url != "" ? var.xml_curl_url : "${trimsuffix(var.controller_url, "/")}/xmlcurl"
    xml_curl_credentials = var.xml_curl_credentials
    gluster_source       = "${local.gluster_primary}:/${var.gluster_volume}"
    mount_options        = local.mount_options
    shared_mount         = var.shared_mount
    gluster_volume       = var.gluster_volume
    gluster_brick_dir    = var.gluster_brick_dir
    gluster_peers        = join(" ", var.gluster_servers)
    gluster_replica      = length(var.gluster_servers) > 1 ? "replica ${length(var.gluster_servers)}" : ""
    gluster_first        = local.gluster_primary == local.self_address ? "yes" : "no"
    self_address         = local.self_address
    gluster_bricks       = join(" ", [for s in var.gluster_servers : "${s}:${var.gluster_brick_dir}"])
    database_url_json    = jsonencode(var.database_url)
    storage_spec         = "gluster://${local.gluster_primary}/${var.gluster_volume}"
    fsfarm_pip_spec      = var.fsfarm_pip_spec
    etcd_name            = "pg${local.member_index + 1}"
    etcd_cluster         = local.etcd_cluster
    member_address       = local.member_index < length(var.postgres_members) ? var.postgres_members[local.member_index] : ""
    etcd_hosts           = join(",", [for a in var.postgres_members : "${a}:2379"])
    pg_superuser_json    = jsonencode(var.postgres_superuser_password)
    pg_replication_json  = jsonencode(var.postgres_replication_password)
    sip_host             = var.sip_address
    floating_json        = jsonencode(join("", [for a in var.floating_addresses : "${a}\n"]))
    fence_command_json   = jsonencode(var.fence_command)
    address_command_json = jsonencode(var.address_command)
    failover_script_b64  = base64encode(var.failover_script)
    extra_packages       = join("", [for p in var.extra_packages : ", ${p}"])
  }

  template  = local.is_freeswitch ? "freeswitch" : var.role
  user_data = templatefile("${path.module}/templates/${local.template}.yaml.tftpl", local.vars)
}
