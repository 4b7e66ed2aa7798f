variable "database" {
  description = "Database the platform builds in (SNOWFLAKE_DATABASE; dbt's prod target)."
  type        = string
  default     = "CHROM"
}

variable "landing_bucket" {
  description = "The GCS landing bucket (infra/gcp variable landing_bucket)."
  type        = string
}

variable "gcs_notification_subscription" {
  description = "Full name of the Pub/Sub subscription for new landing objects (infra/gcp output landing_notifications_subscription)."
  type        = string
}

variable "transformer_public_key" {
  description = "RSA public key (PEM body, no header) of the dbt/Dagster user CHROM_TRANSFORMER; its private key lives in Secret Manager."
  type        = string
}

variable "grafana_public_key" {
  description = "RSA public key (PEM body, no header) of Grafana's read-only user CHROM_GRAFANA."
  type        = string
}

variable "warehouse_size" {
  description = "Size of the transform warehouse dbt runs on."
  type        = string
  default     = "XSMALL"
}

variable "auto_suspend_s" {
  description = "Seconds of idleness before a warehouse suspends (billing stops)."
  type        = number
  default     = 60
}
