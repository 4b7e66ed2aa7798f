output "storage_service_account" {
  description = "GCS service account of the storage integration (infra/gcp variable snowflake_storage_service_account)."
  value       = snowflake_storage_integration.gcs.storage_gcp_service_account
}

output "notification_service_account" {
  description = "Pub/Sub service account of the notification integration (infra/gcp variable snowflake_notification_service_account)."
  value       = snowflake_notification_integration.gcs.gcp_pubsub_service_account_name
}
