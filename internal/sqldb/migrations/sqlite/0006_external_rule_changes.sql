-- Changes made to casbin_rule by other programs (Casbin tools), noted by
-- the rule triggers (created with this migration by internal/sqldb/schema.go) and recorded in the
-- tenant's audit trail by the next anti-entropy pass: one row per tenant.
CREATE TABLE IF NOT EXISTS casbin_rule_external (
  tenant_id     BIGINT PRIMARY KEY,
  added         BIGINT NOT NULL DEFAULT 0,
  removed       BIGINT NOT NULL DEFAULT 0,
  first_version BIGINT NOT NULL,
  last_version  BIGINT NOT NULL
);
-- A transaction of the service holds a row here while it writes rules, so
-- that the rule triggers leave its writes alone (it bumps the policy
-- version itself). The row is deleted before the commit: no other
-- connection ever sees one.
CREATE TABLE IF NOT EXISTS casbin_rule_own_write (
  marker INTEGER NOT NULL
);
