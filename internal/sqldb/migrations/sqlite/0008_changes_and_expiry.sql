-- The change feed: every committed change of a tenant's policy, in the
-- transaction of the change, one row per change item (seq orders the items
-- of one revision). Names (role, permission, user_name, parent,
-- description) hold ciphertexts with field encryption on. Times are Unix
-- microseconds. Rows older than the retention are purged; changes_floor is
-- then the newest revision purged (a feed asked for an older position
-- answers 410 Gone).
CREATE TABLE IF NOT EXISTS policy_changes (
  tenant_id   BIGINT        NOT NULL REFERENCES tenants (id),
  revision    BIGINT        NOT NULL,
  seq         INTEGER       NOT NULL,
  op          VARCHAR(32)   NOT NULL,
  role        VARCHAR(1024),
  permission  VARCHAR(1024),
  user_name   VARCHAR(1024),
  parent      VARCHAR(1024),
  description TEXT,
  expires_at  BIGINT,
  at          BIGINT        NOT NULL,
  PRIMARY KEY (tenant_id, revision, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_policy_changes_at ON policy_changes (at);

-- The feed starts with this migration: a tenant's earlier revisions have no
-- entries.
ALTER TABLE tenants ADD COLUMN changes_floor BIGINT NOT NULL DEFAULT 0;
UPDATE tenants SET changes_floor = policy_version;

-- has_expiries notes that a tenant has (or had) time-bound rules, so that
-- a change of a tenant that never had one skips their table.
ALTER TABLE tenants ADD COLUMN has_expiries BOOLEAN NOT NULL DEFAULT FALSE;

-- Expiry of time-bound rules, keyed by the rule's stored fields (as in
-- casbin_rule: ciphertexts with field encryption on) so that a row survives
-- a program rewriting casbin_rule. expires_at is Unix microseconds.
CREATE TABLE IF NOT EXISTS rule_expiries (
  tenant_id  BIGINT        NOT NULL REFERENCES tenants (id),
  ptype      VARCHAR(32)   NOT NULL,
  v0         VARCHAR(1024) NOT NULL,
  v1         VARCHAR(1024) NOT NULL,
  v2         VARCHAR(1024) NOT NULL,
  expires_at BIGINT        NOT NULL,
  PRIMARY KEY (ptype, v0, v1, v2)
);
CREATE INDEX IF NOT EXISTS idx_rule_expiries_tenant ON rule_expiries (tenant_id);
CREATE INDEX IF NOT EXISTS idx_rule_expiries_due ON rule_expiries (expires_at);
