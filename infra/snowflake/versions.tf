terraform {
  required_version = ">= 1.6"
  required_providers {
    snowflake = {
      source  = "snowflakedb/snowflake"
      version = ">= 2.0, < 3.0"
    }
  }
}

# Connection and the deploying role come from the operator's environment
# (SNOWFLAKE_ORGANIZATION_NAME, SNOWFLAKE_ACCOUNT_NAME, SNOWFLAKE_USER, SNOWFLAKE_ROLE,
# SNOWFLAKE_AUTHENTICATOR, SNOWFLAKE_PRIVATE_KEY): integrations need a role allowed to
# create them, which is the deployer's, never one this code grants.
provider "snowflake" {
  preview_features_enabled = ["snowflake_file_format_resource", "snowflake_pipe_resource", "snowflake_stage_resource", "snowflake_storage_integration_resource", "snowflake_table_resource"]
}
