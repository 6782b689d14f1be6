DROP TABLE deposits;
-- Deposit credits stay in the balances, so their entries stay too, as adjustments (every balance
-- still equals the sum of its entries).
UPDATE ledger_entries SET kind = 'adjustment' WHERE kind = 'deposit';
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('adjustment', 'transfer_in', 'transfer_out', 'usage'));
DROP INDEX users_payment_address_key;
