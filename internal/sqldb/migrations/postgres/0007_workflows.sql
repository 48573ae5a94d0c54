-- Workflows a tenant registers. With field encryption on, name,
-- permission, description, webhook_url, secret and previous_secret hold
-- ciphertexts (deterministic under the tenant's key, so that the unique
-- name still works).
CREATE TABLE IF NOT EXISTS workflows (
  id              BIGSERIAL PRIMARY KEY,
  tenant_id       BIGINT        NOT NULL REFERENCES tenants (id),
  name            VARCHAR(1024) NOT NULL,
  permission      VARCHAR(1024) NOT NULL,
  schedule        VARCHAR(255)  NOT NULL,
  webhook_url     TEXT,
  description     TEXT,
  enabled         BOOLEAN       NOT NULL DEFAULT TRUE,
  notify          VARCHAR(16)   NOT NULL DEFAULT 'changes',
  catch_up        BOOLEAN       NOT NULL DEFAULT TRUE,
  secret          VARCHAR(512)  NOT NULL,
  previous_secret VARCHAR(512),
  previous_until  TIMESTAMPTZ,
  revision        BIGINT        NOT NULL DEFAULT 1,
  created_at      TIMESTAMPTZ   NOT NULL,
  updated_at      TIMESTAMPTZ   NOT NULL,
  UNIQUE (tenant_id, name)
);

-- Runs of workflows: one row per slot (workflow_id, scheduled_at), which
-- is how replicas agree on who runs a slot. users, added and removed are
-- JSON arrays of names (ciphertexts of them with field encryption on).
CREATE TABLE IF NOT EXISTS workflow_runs (
  id               BIGSERIAL PRIMARY KEY,
  workflow_id      BIGINT       NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  tenant_id        BIGINT       NOT NULL REFERENCES tenants (id),
  scheduled_at     TIMESTAMPTZ  NOT NULL,
  "trigger"        VARCHAR(16)  NOT NULL,
  attempt          INTEGER      NOT NULL DEFAULT 1,
  outcome          VARCHAR(16)  NOT NULL,
  owner            VARCHAR(255) NOT NULL DEFAULT '',
  lease_until      TIMESTAMPTZ  NOT NULL,
  started_at       TIMESTAMPTZ  NOT NULL,
  finished_at      TIMESTAMPTZ,
  users            TEXT         NOT NULL,
  added            TEXT         NOT NULL,
  removed          TEXT         NOT NULL,
  user_count       INTEGER      NOT NULL DEFAULT 0,
  error            TEXT         NOT NULL DEFAULT '',
  webhook_outcome  VARCHAR(16),
  webhook_attempts INTEGER      NOT NULL DEFAULT 0,
  webhook_status   INTEGER      NOT NULL DEFAULT 0,
  webhook_error    TEXT         NOT NULL DEFAULT '',
  duration_ms      BIGINT       NOT NULL DEFAULT 0,
  workflow_rev     BIGINT       NOT NULL DEFAULT 0,
  UNIQUE (workflow_id, scheduled_at)
);
CREATE INDEX IF NOT EXISTS idx_workflow_runs_workflow ON workflow_runs (workflow_id, id);
CREATE INDEX IF NOT EXISTS idx_workflow_runs_outcome ON workflow_runs (outcome, lease_until);

-- The registry version: bumped in the transaction of every registry
-- write, polled by every replica to see when to reschedule.
CREATE TABLE IF NOT EXISTS workflow_registry (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  version BIGINT  NOT NULL
);
INSERT INTO workflow_registry (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
