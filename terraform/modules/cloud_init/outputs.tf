output "user_data" {
  description = "cloud-init user-data (#cloud-config) for the machine; pass it to the cloud's user_data argument."
  value       = local.user_data
  sensitive   = true
}

output "join_script" {
  description = "The node's join script (installed as /usr/local/sbin/fsfarm-join by freeswitch and spare user-data; empty for other roles)."
  value       = local.is_freeswitch ? local.join_script : ""
  sensitive   = true
}

output "role" {
  description = "The role rendered, echoed for callers that build maps of machines."
  value       = var.role
}
