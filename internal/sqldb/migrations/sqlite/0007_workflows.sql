-- Workflows a tenant registers. With field encryption on, name,
-- permission, description, webhook_url, secret and previous_secret hold
-- ciphertexts (deterministic under the tenant's key, so that the unique
-- name still works).
CREATE TABLE IF NOT EXISTS workflows (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
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
  previous_until  TIMESTAMP,
  revision        BIGINT        NOT NULL DEFAULT 1,
  created_at      TIMESTAMP     NOT NULL,
  updated_at      TIMESTAMP     NOT NULL,
  UNIQUE (tenant_id, name)
);

-- Runs of workflows: one row per slot (workflow_id, scheduled_at), which
-- is how replicas agree on who runs a slot. users, added and removed are
-- JSON arrays of names (ciphertexts of them with field encryption on).
-- Times are the driver's text form of UTC times to the microsecond
-- ("2006-01-02 15:04:05.999999-07:00" with "+00:00"), written only by the
-- store, so that equal times are equal texts and texts sort as times.
CREATE TABLE IF NOT EXISTS workflow_runs (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  workflow_id      BIGINT       NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  tenant_id        BIGINT       NOT NULL REFERENCES tenants (id),
  scheduled_at     TIMESTAMP    NOT NULL,
  "trigger"        VARCHAR(16)  NOT NULL,
  attempt          INTEGER      NOT NULL DEFAULT 1,
  outcome          VARCHAR(16)  NOT NULL,
  owner            VARCHAR(255) NOT NULL DEFAULT '',
  lease_until      TIMESTAMP    NOT NULL,
  started_at       TIMESTAMP    NOT NULL,
  finished_at      TIMESTAMP,
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
