variable "project_id" {
  description = "The GCP project that hosts the platform (create it empty; this root enables the APIs it needs)."
  type        = string
}

variable "region" {
  description = "Region for the bucket, Artifact Registry and the Cloud Run worker pools."
  type        = string
  default     = "europe-west3"
}

variable "landing_bucket" {
  description = "Name of the GCS landing bucket; CHROM_LANDING_URI is gs://<this name>."
  type        = string
}

variable "readings_topic" {
  description = "Topic the simulator or plant gateway publishes readings to (the application's READINGS_TOPIC)."
  type        = string
  default     = "chrom-readings"
}

variable "max_delivery_attempts" {
  description = "Deliveries before Pub/Sub itself dead-letters a message (5-100). The consumers dead-letter bad messages with a reason themselves; this is only a guard against a crash loop, so the maximum keeps restarts from pushing good readings aside (chrom_platform/lib/io/transport/base.py)."
  type        = number
  default     = 100
}

variable "landing_nearline_after_days" {
  description = "Age after which landed objects move to Nearline storage (the warehouse has loaded them long before)."
  type        = number
  default     = 30
}

variable "image_tag" {
  description = "Tag of the chrom-platform container image in Artifact Registry to run."
  type        = string
}

variable "influx_url" {
  description = "InfluxDB Cloud URL (https://...) the live bridge writes to (CHROM_INFLUX_URL)."
  type        = string
}

variable "influx_org" {
  description = "InfluxDB organisation (CHROM_INFLUX_ORG)."
  type        = string
}

variable "influx_bucket" {
  description = "InfluxDB bucket for live points (CHROM_INFLUX_DATABASE)."
  type        = string
  default     = "chrom"
}

variable "snowflake_storage_service_account" {
  description = "The GCS service account Snowflake's storage integration reports (output of infra/snowflake; empty on the first apply)."
  type        = string
  default     = ""
}

variable "snowflake_notification_service_account" {
  description = "The Pub/Sub service account Snowflake's notification integration reports (output of infra/snowflake; empty on the first apply)."
  type        = string
  default     = ""
}
