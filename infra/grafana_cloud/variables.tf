variable "influx_url" {
  description = "InfluxDB Cloud URL Grafana queries with InfluxQL (the v1-compatible API)."
  type        = string
}

variable "influx_bucket" {
  description = "InfluxDB bucket of live points; needs a DBRP mapping to a database of the same name for InfluxQL."
  type        = string
  default     = "chrom"
}

variable "influx_read_token" {
  description = "A read-only InfluxDB token for Grafana (pass with TF_VAR_influx_read_token; sensitive)."
  type        = string
  sensitive   = true
}

variable "snowflake_account" {
  description = "Snowflake account identifier (orgname-accountname)."
  type        = string
}

variable "snowflake_database" {
  description = "Database the gold tables are in (infra/snowflake variable database)."
  type        = string
  default     = "CHROM"
}

variable "snowflake_private_key" {
  description = "Private key of CHROM_GRAFANA (pass with TF_VAR_snowflake_private_key; sensitive)."
  type        = string
  sensitive   = true
}
