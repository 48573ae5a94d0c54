ALTER TABLE tenant_keys ADD COLUMN last_used_at TIMESTAMP;
