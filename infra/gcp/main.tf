# Production profile on GCP: the queue (Pub/Sub), the landing bucket (GCS), the consumers
# (Cloud Run worker pools), images (Artifact Registry) and secrets (Secret Manager).
# One service account per workload, each with only the roles its work needs; nothing here
# grants an admin, owner or editor role.

locals {
  labels = { app = "chrom-platform", managed-by = "terraform" }
  # subscription names the application uses (chrom_platform/lib/io/transport/base.py)
  subscriptions = { live = "live-bridge", landing = "landing" }
  image         = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/chrom-platform:${var.image_tag}"
  pubsub_agent  = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

data "google_project" "this" {}

data "google_storage_project_service_account" "gcs" {}

resource "google_project_service" "apis" {
  for_each = toset([
    "pubsub.googleapis.com",
    "storage.googleapis.com",
    "run.googleapis.com",
    "artifactregistry.googleapis.com",
    "secretmanager.googleapis.com",
    "iam.googleapis.com",
  ])
  service            = each.value
  disable_on_destroy = false
}

# -- queue ---------------------------------------------------------------------------------

resource "google_pubsub_topic" "readings" {
  name                       = var.readings_topic
  labels                     = local.labels
  message_retention_duration = "604800s" # a week of replay after an outage
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  name                       = "${var.readings_topic}-dead-letter"
  labels                     = local.labels
  message_retention_duration = "2678400s"
}

resource "google_pubsub_subscription" "consumers" {
  for_each = local.subscriptions
  name     = each.value
  topic    = google_pubsub_topic.readings.id
  labels   = local.labels

  # readings of one unit in order (ordering key = unit_id), as the bridge's CV needs
  enable_message_ordering    = true
  ack_deadline_seconds       = 30 # the consumers extend leases while a write retries
  message_retention_duration = "604800s"
  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "60s"
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }
  expiration_policy {
    ttl = "" # never expire
  }
}

# the audit subscription `chrom-bridge dead-letters` reads
resource "google_pubsub_subscription" "dead_letter_audit" {
  name                       = "dead-letter-audit"
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = local.labels
  message_retention_duration = "2678400s"
  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub's own agent forwards undeliverable messages: publish to the dead-letter topic,
# acknowledge on the source subscriptions
resource "google_pubsub_topic_iam_member" "agent_publishes_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_acks_dead_letters" {
  for_each     = google_pubsub_subscription.consumers
  subscription = each.value.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# -- landing bucket ------------------------------------------------------------------------

resource "google_storage_bucket" "landing" {
  name                        = var.landing_bucket
  location                    = var.region
  labels                      = local.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      age = var.landing_nearline_after_days
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }
  lifecycle_rule {
    condition {
      num_newer_versions = 3
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  depends_on = [google_project_service.apis]
}

# new objects -> a topic Snowpipe's notification integration subscribes to (auto-ingest)
resource "google_pubsub_topic" "landing_objects" {
  name   = "chrom-landing-objects"
  labels = local.labels
}

resource "google_pubsub_topic_iam_member" "gcs_announces_objects" {
  topic  = google_pubsub_topic.landing_objects.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_storage_notification" "landing_objects" {
  bucket         = google_storage_bucket.landing.name
  payload_format = "JSON_API_V1"
  topic          = google_pubsub_topic.landing_objects.id
  event_types    = ["OBJECT_FINALIZE"]
  object_name_prefix = "landing/"
  depends_on     = [google_pubsub_topic_iam_member.gcs_announces_objects]
}

resource "google_pubsub_subscription" "snowpipe" {
  name                 = "chrom-landing-snowpipe"
  topic                = google_pubsub_topic.landing_objects.id
  labels               = local.labels
  ack_deadline_seconds = 60
}

# Snowflake's own service accounts (from the integrations in infra/snowflake): read the
# bucket, consume the object notifications. Empty until infra/snowflake has been applied.
resource "google_storage_bucket_iam_member" "snowflake_reads_landing" {
  count  = var.snowflake_storage_service_account == "" ? 0 : 1
  bucket = google_storage_bucket.landing.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${var.snowflake_storage_service_account}"
}

resource "google_pubsub_subscription_iam_member" "snowflake_consumes_notifications" {
  count        = var.snowflake_notification_service_account == "" ? 0 : 1
  subscription = google_pubsub_subscription.snowpipe.id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${var.snowflake_notification_service_account}"
}

# -- images and secrets --------------------------------------------------------------------

resource "google_artifact_registry_repository" "images" {
  repository_id = "chrom"
  location      = var.region
  format        = "DOCKER"
  labels        = local.labels
  depends_on    = [google_project_service.apis]
}

# Secret values are added out of band (`gcloud secrets versions add`), never in Terraform
# state or code.
resource "google_secret_manager_secret" "secrets" {
  for_each  = toset(["chrom-influx-token", "chrom-snowflake-private-key"])
  secret_id = each.value
  labels    = local.labels
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

# -- workloads: one service account each ---------------------------------------------------

resource "google_service_account" "workload" {
  for_each     = toset(["chrom-publisher", "chrom-bridge", "chrom-landing", "chrom-dagster"])
  account_id   = each.value
  display_name = "chrom-platform ${each.value}"
}

locals {
  sa = { for k, v in google_service_account.workload : k => "serviceAccount:${v.email}" }
}

# the plant gateway (or the simulator) only publishes readings
resource "google_pubsub_topic_iam_member" "publisher_publishes" {
  topic  = google_pubsub_topic.readings.id
  role   = "roles/pubsub.publisher"
  member = local.sa["chrom-publisher"]
}

# the live bridge: its subscription, dead letters, the envelope it reads, its InfluxDB token
resource "google_pubsub_subscription_iam_member" "bridge_pulls" {
  subscription = google_pubsub_subscription.consumers["live"].id
  role         = "roles/pubsub.subscriber"
  member       = local.sa["chrom-bridge"]
}

# the landing consumer: its subscription and writing objects. A redelivered micro-batch is
# re-written under the same deterministic name (an overwrite), so writers get objectUser
# (create, overwrite, read objects; nothing on the bucket itself) rather than objectCreator,
# which cannot replace an object.
resource "google_pubsub_subscription_iam_member" "landing_pulls" {
  subscription = google_pubsub_subscription.consumers["landing"].id
  role         = "roles/pubsub.subscriber"
  member       = local.sa["chrom-landing"]
}

resource "google_pubsub_topic_iam_member" "consumers_dead_letter" {
  for_each = toset(["chrom-bridge", "chrom-landing"])
  topic    = google_pubsub_topic.dead_letter.id
  role     = "roles/pubsub.publisher"
  member   = local.sa[each.value]
}

resource "google_storage_bucket_iam_member" "writes_objects" {
  for_each = toset(["chrom-landing", "chrom-dagster"])
  bucket   = google_storage_bucket.landing.name
  role     = "roles/storage.objectUser"
  member   = local.sa[each.value]
}

resource "google_storage_bucket_iam_member" "reads_objects" {
  for_each = toset(["chrom-bridge", "chrom-dagster"])
  bucket   = google_storage_bucket.landing.name
  role     = "roles/storage.objectViewer"
  member   = local.sa[each.value]
}

resource "google_secret_manager_secret_iam_member" "reads_secret" {
  for_each = {
    bridge-influx     = { sa = "chrom-bridge", secret = "chrom-influx-token" }
    dagster-influx    = { sa = "chrom-dagster", secret = "chrom-influx-token" }
    dagster-snowflake = { sa = "chrom-dagster", secret = "chrom-snowflake-private-key" }
  }
  secret_id = google_secret_manager_secret.secrets[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.sa[each.value.sa]
}

# -- consumers on Cloud Run (worker pools: pull consumers, no HTTP port) -------------------

resource "google_cloud_run_v2_worker_pool" "consumer" {
  for_each = local.subscriptions
  name     = "chrom-${each.key}-consumer"
  location = var.region
  labels   = local.labels

  scaling {
    # one instance per subscription keeps per-unit order simple; Pub/Sub ordering keys
    # would allow more
    manual_instance_count = 1
  }
  template {
    service_account = google_service_account.workload[each.key == "live" ? "chrom-bridge" : "chrom-landing"].email
    containers {
      image   = local.image
      command = ["chrom-bridge"]
      args    = ["serve", "--only", each.key]
      env {
        name  = "CHROM_PROFILE"
        value = "gcp"
      }
      env {
        name  = "CHROM_TRANSPORT_URI"
        value = "pubsub://${var.project_id}"
      }
      env {
        name  = "CHROM_LANDING_URI"
        value = "gs://${google_storage_bucket.landing.name}"
      }
      env {
        name  = "CHROM_INFLUX_URL"
        value = var.influx_url
      }
      env {
        name  = "CHROM_INFLUX_ORG"
        value = var.influx_org
      }
      env {
        name  = "CHROM_INFLUX_DATABASE"
        value = var.influx_bucket
      }
      dynamic "env" {
        for_each = each.key == "live" ? [1] : []
        content {
          name = "CHROM_INFLUX_TOKEN"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.secrets["chrom-influx-token"].secret_id
              version = "latest"
            }
          }
        }
      }
      resources {
        limits = { cpu = "1", memory = "1Gi" }
      }
    }
  }
  depends_on = [google_project_service.apis]
}
