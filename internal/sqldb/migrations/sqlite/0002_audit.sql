CREATE TABLE IF NOT EXISTS audit_log (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_fp   VARCHAR(64)  NOT NULL,
  seq         BIGINT       NOT NULL,
  occurred_at VARCHAR(32)  NOT NULL,
  user_fp     VARCHAR(64)  NOT NULL DEFAULT '',
  action      VARCHAR(64)  NOT NULL,
  resource    TEXT         NOT NULL,
  success     BOOLEAN      NOT NULL,
  details     TEXT         NOT NULL,
  ip          VARCHAR(64)  NOT NULL DEFAULT '',
  user_agent  VARCHAR(512) NOT NULL DEFAULT '',
  request_id  VARCHAR(128) NOT NULL DEFAULT '',
  mac         VARCHAR(64)  NOT NULL,
  UNIQUE (tenant_fp, seq)
);
CREATE INDEX IF NOT EXISTS idx_audit_log_tenant_time ON audit_log (tenant_fp, occurred_at);

CREATE TABLE IF NOT EXISTS audit_heads (
  tenant_fp     VARCHAR(64) PRIMARY KEY,
  seq           BIGINT      NOT NULL,
  mac           VARCHAR(64) NOT NULL,
  head_mac      VARCHAR(64) NOT NULL,
  base_seq      BIGINT      NOT NULL DEFAULT 0,
  base_mac      VARCHAR(64) NOT NULL DEFAULT '',
  base_head_mac VARCHAR(64) NOT NULL DEFAULT ''
);
