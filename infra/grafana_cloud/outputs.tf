output "dashboard_urls" {
  description = "Where each dashboard lives in the stack."
  value       = { for k, d in grafana_dashboard.chrom : k => d.url }
}
