use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// On PostgreSQL, a group-commit batch of plain issuance in one round trip: the function
/// locks the batch's API keys (in id order), checks their counts in a statement of its own
/// (a new snapshot, taken once the locks are held), moves the audit chain's head by
/// compare-and-swap, and inserts the certificates, the audit records and the webhook
/// deliveries. Either all of it or nothing: it answers `limit` (a key would pass its limit)
/// or `head` (another appender moved the head) before writing anything, and the caller takes
/// the transaction path (`storage/src/issuance.rs`). SQLite has no functions; its writer runs
/// the batch on its own connection instead.
///
/// Two rules are written here a second time, in SQL, and must change with their Rust
/// originals: what counts against a key's limit (`read_facts`' `counted` in
/// `storage/src/issuance.rs`) and which endpoints want an event
/// (`storage/src/webhooks/events.rs`, `wanted`).
pub(crate) const CREATE: &str = r#"
CREATE OR REPLACE FUNCTION fleetca_issue_batch(
    p_limits jsonb, p_now timestamptz, p_certs jsonb, p_audit jsonb,
    p_head_seq bigint, p_head_hash text, p_new_seq bigint, p_new_hash text, p_events jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    swapped integer;
BEGIN
    PERFORM 1 FROM users
        WHERE id IN (SELECT k.id FROM jsonb_to_recordset(p_limits) AS k(id uuid, need bigint, max bigint))
        ORDER BY id FOR UPDATE;
    IF EXISTS (
        SELECT 1 FROM jsonb_to_recordset(p_limits) AS k(id uuid, need bigint, max bigint)
        WHERE k.need + (SELECT count(*) FROM certificates c
                        WHERE c.api_key_id = k.id AND c.revoked_at IS NULL
                          AND c.not_after > p_now AND c.supersede_at IS NULL) > k.max
    ) THEN
        RETURN 'limit';
    END IF;
    IF p_new_seq IS NOT NULL THEN
        UPDATE audit_head SET seq = p_new_seq, hash = p_new_hash
            WHERE id = 1 AND seq = p_head_seq AND hash = p_head_hash;
        GET DIAGNOSTICS swapped = ROW_COUNT;
        IF swapped = 0 THEN
            RETURN 'head';
        END IF;
    END IF;
    -- The columns by name: one a later migration adds takes its default here.
    INSERT INTO certificates (id, name, kind, api_key_id, enterprise, serial, fingerprint, certificate_pem, not_before, not_after, created_at, revoked_at, revocation_reason, device, supersede_at, renewed_by, renewed_via, expiry_warned, issuer_id, crl_shard)
        SELECT id, name, kind, api_key_id, enterprise, serial, fingerprint, certificate_pem, not_before, not_after, created_at, revoked_at, revocation_reason, device, supersede_at, renewed_by, renewed_via, expiry_warned, issuer_id, crl_shard
        FROM jsonb_populate_recordset(NULL::certificates, p_certs);
    INSERT INTO audit_log (seq, at, actor_id, actor, role, action, target_kind, target_id, enterprise, request_id, client_addr, outcome, details, prev_hash, hash)
        SELECT seq, at, actor_id, actor, role, action, target_kind, target_id, enterprise, request_id, client_addr, outcome, details, prev_hash, hash
        FROM jsonb_populate_recordset(NULL::audit_log, p_audit);
    INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload, status, attempts, next_attempt_at, created_at)
        SELECT w.id, e.event_id, e.event_type, e.payload, 'pending', 0, p_now, p_now
        FROM jsonb_to_recordset(p_events) AS e(n bigint, event_id text, event_type text, enterprise text, payload text)
        JOIN webhooks w ON w.is_active
            AND e.event_type = ANY (string_to_array(w.events, ','))
            AND (w.enterprise IS NULL OR w.enterprise = e.enterprise)
        ORDER BY e.n, w.id;
    RETURN 'ok';
END
$$;
"#;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        super::on_postgres(m, CREATE).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        super::on_postgres(m, "DROP FUNCTION IF EXISTS fleetca_issue_batch(jsonb, timestamptz, jsonb, jsonb, bigint, text, bigint, text, jsonb)").await
    }
}
