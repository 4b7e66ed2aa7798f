terraform {
  required_version = ">= 1.6"
  required_providers {
    grafana = {
      source  = "grafana/grafana"
      version = ">= 3.0, < 5.0"
    }
  }
}

# The stack URL and a service-account token come from the operator's environment
# (GRAFANA_URL, GRAFANA_AUTH): the token is never in code or variables files.
provider "grafana" {}
