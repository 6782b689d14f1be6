-- Usage charges stay in the ledger (balances equal the sum of their entries) as adjustments.
UPDATE ledger_entries SET kind = 'adjustment' WHERE kind = 'usage';
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('adjustment', 'transfer_in', 'transfer_out'));
DROP TABLE usage_keys;
DROP TABLE usage_buckets;
DROP TABLE quota_counters;
DROP TABLE user_discounts;
DROP TABLE user_quotas;
