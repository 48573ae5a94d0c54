CREATE TABLE IF NOT EXISTS casbin_rule (
  id    BIGSERIAL PRIMARY KEY,
  ptype VARCHAR(32)   NOT NULL DEFAULT '',
  v0    VARCHAR(1024) NOT NULL DEFAULT '',
  v1    VARCHAR(1024) NOT NULL DEFAULT '',
  v2    VARCHAR(1024) NOT NULL DEFAULT '',
  v3    VARCHAR(1024) NOT NULL DEFAULT '',
  v4    VARCHAR(1024) NOT NULL DEFAULT '',
  v5    VARCHAR(1024) NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_casbin_rule ON casbin_rule (ptype, v0, v1, v2, v3, v4, v5);
CREATE INDEX IF NOT EXISTS idx_casbin_rule_ptype_v1 ON casbin_rule (ptype, v1);
CREATE INDEX IF NOT EXISTS idx_casbin_rule_ptype_v2 ON casbin_rule (ptype, v2);

CREATE TABLE IF NOT EXISTS tenants (
  id             BIGSERIAL PRIMARY KEY,
  key_hash       VARCHAR(64) NOT NULL UNIQUE,
  policy_version BIGINT      NOT NULL DEFAULT 0,
  created_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS roles (
  id          BIGSERIAL PRIMARY KEY,
  tenant_id   BIGINT        NOT NULL REFERENCES tenants (id),
  name        VARCHAR(1024) NOT NULL,
  description TEXT,
  created_at  TIMESTAMPTZ   NOT NULL,
  UNIQUE (tenant_id, name)
);
