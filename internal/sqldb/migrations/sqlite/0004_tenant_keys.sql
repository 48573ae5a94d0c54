CREATE TABLE IF NOT EXISTS tenant_keys (
  key_hash   VARCHAR(64) PRIMARY KEY,
  tenant_id  BIGINT      NOT NULL REFERENCES tenants (id),
  created_at TIMESTAMP   NOT NULL,
  expires_at TIMESTAMP,
  revoked_at TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_tenant_keys_tenant ON tenant_keys (tenant_id);
INSERT INTO tenant_keys (key_hash, tenant_id, created_at)
  SELECT key_hash, id, created_at FROM tenants WHERE key_hash NOT IN (SELECT key_hash FROM tenant_keys);
