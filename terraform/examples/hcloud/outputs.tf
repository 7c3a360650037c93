output "controller_url" {
  description = "Controller API and xml_curl base URL on the private network."
  value       = local.controller_url
}

output "controller_public_ip" {
  description = "Public IPv4 address of the controller."
  value       = hcloud_server.controller.ipv4_address
}

output "kamailio_public_ip" {
  description = "Public IPv4 address of the SIP edge: point the tenants' SIP domains here."
  value       = hcloud_server.kamailio.ipv4_address
}

output "node_private_ips" {
  description = "Private address of every FreeSWITCH node and spare, by node name."
  value       = { for name, node in local.nodes : name => node.ip }
}

output "node_floating_ips" {
  description = "Floating IPv4 of every FreeSWITCH node and spare, by node name: its SIP and media address (`fsfarm node add --sip <ip>:5060`)."
  value       = { for name, ip in hcloud_floating_ip.node : name => ip.ip_address }
}

output "database_hosts" {
  description = "PostgreSQL/Patroni members' private addresses."
  value       = local.postgres_ips
}

output "storage" {
  description = "The controller's FSFARM_STORAGE setting (nodes mount the same volume with FUSE)."
  value       = "gluster://${local.gluster_ips[0]}/fsfarm"
}
