-- Changes made to casbin_rule by other programs (Casbin tools), noted by
-- the rule triggers (created with this migration by internal/sqldb/schema.go) and recorded in the
-- tenant's audit trail by the next anti-entropy pass: one row per tenant.
-- The service's own transactions set auth.own_write, which the triggers
-- skip.
CREATE TABLE IF NOT EXISTS casbin_rule_external (
  tenant_id     BIGINT PRIMARY KEY,
  added         BIGINT NOT NULL DEFAULT 0,
  removed       BIGINT NOT NULL DEFAULT 0,
  first_version BIGINT NOT NULL,
  last_version  BIGINT NOT NULL
);
