# Grafana Cloud: a folder, the two datasources with the UIDs the dashboards address, the
# five dashboards and the alert rules, all from the files `chrom dashboards` generates in
# infra/grafana (gcp profile). Nothing is edited by hand in Grafana.

locals {
  generated   = "${path.module}/../grafana"
  dashboards  = fileset("${local.generated}/dashboards/gcp", "*.json")
  rule_groups = yamldecode(file("${local.generated}/provisioning/gcp/alerting.yaml")).groups
}

resource "grafana_folder" "chrom" {
  title = "Chromatography"
  uid   = "chromatography"
}

resource "grafana_data_source" "influx" {
  name = "Chromatography live (InfluxDB)"
  uid  = "chrom-influx"
  type = "influxdb"
  url  = var.influx_url
  json_data_encoded = jsonencode({
    version         = "InfluxQL"
    dbName          = var.influx_bucket
    httpMode        = "POST"
    httpHeaderName1 = "Authorization"
  })
  secure_json_data_encoded = jsonencode({
    httpHeaderValue1 = "Token ${var.influx_read_token}"
  })
}

resource "grafana_data_source" "warehouse" {
  name = "Chromatography warehouse"
  uid  = "chrom-warehouse"
  type = "grafana-snowflake-datasource"
  json_data_encoded = jsonencode({
    account              = var.snowflake_account
    authType             = "keypair"
    username             = "CHROM_GRAFANA"
    role                 = "CHROM_READER"
    warehouse            = "CHROM_READER_WH"
    database             = var.snowflake_database
    defaultInterpolation = ""
  })
  secure_json_data_encoded = jsonencode({
    privateKey = var.snowflake_private_key
  })
}

resource "grafana_dashboard" "chrom" {
  for_each    = local.dashboards
  folder      = grafana_folder.chrom.uid
  config_json = file("${local.generated}/dashboards/gcp/${each.value}")
  overwrite   = true
  depends_on  = [grafana_data_source.influx, grafana_data_source.warehouse]
}

resource "grafana_rule_group" "chrom" {
  for_each         = { for g in local.rule_groups : g.name => g }
  name             = each.key
  folder_uid       = grafana_folder.chrom.uid
  interval_seconds = tonumber(trimsuffix(each.value.interval, "s"))

  dynamic "rule" {
    for_each = each.value.rules
    content {
      name           = rule.value.title
      uid            = rule.value.uid
      condition      = rule.value.condition
      for            = rule.value["for"]
      no_data_state  = rule.value.noDataState
      exec_err_state = rule.value.execErrState
      labels         = rule.value.labels
      annotations    = rule.value.annotations
      dynamic "data" {
        for_each = rule.value.data
        content {
          ref_id         = data.value.refId
          datasource_uid = data.value.datasourceUid
          model          = jsonencode(data.value.model)
          relative_time_range {
            from = try(data.value.relativeTimeRange.from, 0)
            to   = try(data.value.relativeTimeRange.to, 0)
          }
        }
      }
    }
  }
  depends_on = [grafana_data_source.influx, grafana_data_source.warehouse]
}
