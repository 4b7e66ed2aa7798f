output "landing_uri" {
  description = "CHROM_LANDING_URI for the gcp profile."
  value       = "gs://${google_storage_bucket.landing.name}"
}

output "transport_uri" {
  description = "CHROM_TRANSPORT_URI for the gcp profile."
  value       = "pubsub://${var.project_id}"
}

output "landing_notifications_subscription" {
  description = "Subscription Snowflake's notification integration reads (infra/snowflake variable gcs_notification_subscription)."
  value       = google_pubsub_subscription.snowpipe.id
}

output "image_repository" {
  description = "Where to push the chrom-platform image (docker push <this>:<tag>)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/chrom-platform"
}

output "service_accounts" {
  description = "E-mail of each workload's service account."
  value       = { for k, v in google_service_account.workload : k => v.email }
}
