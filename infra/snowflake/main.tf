# Production warehouse on Snowflake: the database and its layers, auto-suspending
# warehouses, the GCS stage with auto-ingest pipes that fill RAW (one VARIANT row per
# reading, event line, lab document and master-data snapshot, with the staged file's name
# and the load time: what dbt's bronze models read), and three least-privilege roles:
#   CHROM_LOADER       owns the pipes; inserts into RAW only
#   CHROM_TRANSFORMER  dbt and Dagster: reads RAW, builds BRONZE/SILVER/GOLD
#   CHROM_READER       Grafana: reads GOLD only

locals {
  # the dbt layers (dbt_chrom/dbt_project.yml) plus RAW for the pipes
  schemas = ["RAW", "BRONZE", "SILVER", "GOLD"]
  # raw table -> landing prefix and file format (dbt_chrom/models/bronze/__sources.yml)
  raw_tables = {
    RAW_READINGS       = { prefix = "readings/", format = "PARQUET" }
    RAW_BATCH_EVENTS   = { prefix = "batch_events/", format = "JSON_LINES" }
    RAW_SAMPLE_RESULTS = { prefix = "sample_results/", format = "JSON_DOCUMENT" }
    RAW_MASTER_DATA    = { prefix = "master_data/", format = "JSON_DOCUMENT" }
  }
  db = snowflake_database.chrom.name
}

resource "snowflake_database" "chrom" {
  name    = var.database
  comment = "chrom-platform: landing RAW, dbt bronze/silver/gold"
}

resource "snowflake_schema" "layer" {
  for_each = toset(local.schemas)
  database = local.db
  name     = each.value
}

resource "snowflake_warehouse" "transform" {
  name           = "CHROM_TRANSFORM_WH"
  warehouse_size = var.warehouse_size
  auto_suspend   = var.auto_suspend_s
  auto_resume    = true
  initially_suspended = true
}

resource "snowflake_warehouse" "reader" {
  name           = "CHROM_READER_WH"
  warehouse_size = "XSMALL"
  auto_suspend   = var.auto_suspend_s
  auto_resume    = true
  initially_suspended = true
}

# -- GCS stage and auto-ingest --------------------------------------------------------------

resource "snowflake_storage_integration" "gcs" {
  name                      = "CHROM_GCS"
  type                      = "EXTERNAL_STAGE"
  storage_provider          = "GCS"
  enabled                   = true
  storage_allowed_locations = ["gcs://${var.landing_bucket}/landing/"]
}

resource "snowflake_notification_integration" "gcs" {
  name                            = "CHROM_GCS_NOTIFICATIONS"
  enabled                         = true
  notification_provider           = "GCP_PUBSUB"
  gcp_pubsub_subscription_name    = var.gcs_notification_subscription
}

resource "snowflake_file_format" "parquet" {
  name        = "CHROM_PARQUET"
  database    = local.db
  schema      = snowflake_schema.layer["RAW"].name
  format_type = "PARQUET"
}

resource "snowflake_file_format" "json_lines" {
  name              = "CHROM_JSON_LINES"
  database          = local.db
  schema            = snowflake_schema.layer["RAW"].name
  format_type       = "JSON"
  strip_outer_array = false
}

resource "snowflake_file_format" "json_document" {
  name              = "CHROM_JSON_DOCUMENT"
  database          = local.db
  schema            = snowflake_schema.layer["RAW"].name
  format_type       = "JSON"
  strip_outer_array = true
}

resource "snowflake_stage" "landing" {
  name                = "LANDING"
  database            = local.db
  schema              = snowflake_schema.layer["RAW"].name
  url                 = "gcs://${var.landing_bucket}/landing/"
  storage_integration = snowflake_storage_integration.gcs.name
}

resource "snowflake_table" "raw" {
  for_each = local.raw_tables
  database = local.db
  schema   = snowflake_schema.layer["RAW"].name
  name     = each.key
  column {
    name = "RAW"
    type = "VARIANT"
  }
  column {
    name = "SOURCE_FILE"
    type = "VARCHAR"
  }
  column {
    name = "LOADED_AT"
    type = "TIMESTAMP_NTZ(9)"
  }
}

resource "snowflake_pipe" "raw" {
  for_each    = local.raw_tables
  database    = local.db
  schema      = snowflake_schema.layer["RAW"].name
  name        = "PIPE_${each.key}"
  auto_ingest = true
  integration = snowflake_notification_integration.gcs.name
  copy_statement = join(" ", [
    "copy into ${local.db}.RAW.${each.key} (RAW, SOURCE_FILE, LOADED_AT)",
    "from (select $1, metadata$filename, current_timestamp()::timestamp_ntz",
    "from @${local.db}.RAW.${snowflake_stage.landing.name}/${each.value.prefix})",
    "file_format = (format_name = '${local.db}.RAW.CHROM_${each.value.format}')",
  ])
  depends_on = [snowflake_file_format.parquet, snowflake_file_format.json_lines, snowflake_file_format.json_document]
}

# -- roles, users and grants ---------------------------------------------------------------

resource "snowflake_account_role" "role" {
  for_each = toset(["CHROM_LOADER", "CHROM_TRANSFORMER", "CHROM_READER"])
  name     = each.value
}

resource "snowflake_grant_privileges_to_account_role" "database_usage" {
  for_each          = snowflake_account_role.role
  account_role_name = each.value.name
  privileges        = ["USAGE"]
  on_account_object {
    object_type = "DATABASE"
    object_name = local.db
  }
}

resource "snowflake_grant_privileges_to_account_role" "schema_usage" {
  for_each = {
    loader-raw         = { role = "CHROM_LOADER", schema = "RAW" }
    transformer-raw    = { role = "CHROM_TRANSFORMER", schema = "RAW" }
    transformer-bronze = { role = "CHROM_TRANSFORMER", schema = "BRONZE" }
    transformer-silver = { role = "CHROM_TRANSFORMER", schema = "SILVER" }
    transformer-gold   = { role = "CHROM_TRANSFORMER", schema = "GOLD" }
    reader-gold        = { role = "CHROM_READER", schema = "GOLD" }
  }
  account_role_name = snowflake_account_role.role[each.value.role].name
  privileges        = ["USAGE"]
  on_schema {
    schema_name = "\"${local.db}\".\"${each.value.schema}\""
  }
}

# dbt creates and replaces its models in the three layers
resource "snowflake_grant_privileges_to_account_role" "transformer_builds" {
  for_each          = toset(["BRONZE", "SILVER", "GOLD"])
  account_role_name = snowflake_account_role.role["CHROM_TRANSFORMER"].name
  privileges        = ["CREATE TABLE", "CREATE VIEW"]
  on_schema {
    schema_name = "\"${local.db}\".\"${each.value}\""
  }
}

resource "snowflake_grant_privileges_to_account_role" "transformer_reads_raw" {
  account_role_name = snowflake_account_role.role["CHROM_TRANSFORMER"].name
  privileges        = ["SELECT"]
  on_schema_object {
    all {
      object_type_plural = "TABLES"
      in_schema          = "\"${local.db}\".\"RAW\""
    }
  }
}

resource "snowflake_grant_privileges_to_account_role" "loader_inserts_raw" {
  for_each          = snowflake_table.raw
  account_role_name = snowflake_account_role.role["CHROM_LOADER"].name
  privileges        = ["INSERT", "SELECT"]
  on_schema_object {
    object_type = "TABLE"
    object_name = "\"${local.db}\".\"RAW\".\"${each.key}\""
  }
}

resource "snowflake_grant_privileges_to_account_role" "reader_reads_gold" {
  for_each          = toset(["all", "future"])
  account_role_name = snowflake_account_role.role["CHROM_READER"].name
  privileges        = ["SELECT"]
  on_schema_object {
    dynamic "all" {
      for_each = each.value == "all" ? [1] : []
      content {
        object_type_plural = "TABLES"
        in_schema          = "\"${local.db}\".\"GOLD\""
      }
    }
    dynamic "future" {
      for_each = each.value == "future" ? [1] : []
      content {
        object_type_plural = "TABLES"
        in_schema          = "\"${local.db}\".\"GOLD\""
      }
    }
  }
}

resource "snowflake_grant_privileges_to_account_role" "warehouse_usage" {
  for_each = {
    CHROM_TRANSFORMER = snowflake_warehouse.transform.name
    CHROM_READER      = snowflake_warehouse.reader.name
  }
  account_role_name = snowflake_account_role.role[each.key].name
  privileges        = ["USAGE"]
  on_account_object {
    object_type = "WAREHOUSE"
    object_name = each.value
  }
}

resource "snowflake_grant_privileges_to_account_role" "loader_uses_stage" {
  account_role_name = snowflake_account_role.role["CHROM_LOADER"].name
  privileges        = ["USAGE"]
  on_schema_object {
    object_type = "STAGE"
    object_name = "\"${local.db}\".\"RAW\".\"${snowflake_stage.landing.name}\""
  }
}

resource "snowflake_grant_ownership" "loader_owns_pipes" {
  for_each          = snowflake_pipe.raw
  account_role_name = snowflake_account_role.role["CHROM_LOADER"].name
  on {
    object_type = "PIPE"
    object_name = "\"${local.db}\".\"RAW\".\"${each.value.name}\""
  }
}

# key-pair service users (no passwords)
resource "snowflake_service_user" "transformer" {
  name              = "CHROM_TRANSFORMER"
  default_role      = snowflake_account_role.role["CHROM_TRANSFORMER"].name
  default_warehouse = snowflake_warehouse.transform.name
  rsa_public_key    = var.transformer_public_key
}

resource "snowflake_service_user" "grafana" {
  name              = "CHROM_GRAFANA"
  default_role      = snowflake_account_role.role["CHROM_READER"].name
  default_warehouse = snowflake_warehouse.reader.name
  rsa_public_key    = var.grafana_public_key
}

resource "snowflake_grant_account_role" "to_user" {
  for_each = {
    CHROM_TRANSFORMER = snowflake_service_user.transformer.name
    CHROM_READER      = snowflake_service_user.grafana.name
  }
  role_name = snowflake_account_role.role[each.key].name
  user_name = each.value
}
