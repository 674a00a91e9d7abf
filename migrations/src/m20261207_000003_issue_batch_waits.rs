use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// On PostgreSQL, `fleetca_issue_batch` (migration `m20261207_000002_issue_batch`) again,
/// with one change: its compare-and-swap of the audit chain's head waits, briefly, when the
/// head is *behind* the one the batch names. The issuance writer sends a batch while the one
/// before it is still being written, chained from that one's last record
/// (`storage/src/issuance/postgres.rs`); the second can reach its swap before the first has
/// reached its own, and then it waits for it instead of failing. A head moved by anyone else
/// (it is at or past the named one, or the batch before wrote nothing) is still `head`.
/// Everything else, and the two rules written in SQL there, is as in that migration.
const CREATE: &str = r#"
CREATE OR REPLACE FUNCTION fleetca_issue_batch(
    p_limits jsonb, p_now timestamptz, p_certs jsonb, p_audit jsonb,
    p_head_seq bigint, p_head_hash text, p_new_seq bigint, p_new_hash text, p_events jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    swapped integer;
    current_seq bigint;
    waited integer := 0;
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
        LOOP
            UPDATE audit_head SET seq = p_new_seq, hash = p_new_hash
                WHERE id = 1 AND seq = p_head_seq AND hash = p_head_hash;
            GET DIAGNOSTICS swapped = ROW_COUNT;
            EXIT WHEN swapped > 0;
            -- Behind the head this batch chains from: the batch sent before it has not
            -- reached its own swap yet. Wait for it (once it has, the UPDATE above waits on
            -- its lock of the row and then finds its head), about 20 ms at most (pg_sleep
            -- sleeps whole milliseconds). Its keys stay locked meanwhile: when the batch
            -- before needs one of them, it waits for this one to give up.
            SELECT seq INTO current_seq FROM audit_head WHERE id = 1;
            IF current_seq IS NULL OR current_seq >= p_head_seq OR waited >= 20 THEN
                RETURN 'head';
            END IF;
            waited := waited + 1;
            PERFORM pg_sleep(0.001);
        END LOOP;
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
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        super::on_postgres(m, CREATE).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Back to the function as the migration before this one made it.
        super::on_postgres(m, super::m20261207_000002_issue_batch::CREATE).await
    }
}
