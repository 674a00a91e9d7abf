use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// On PostgreSQL, `fleetca_issue_batch` (migrations `m20261207_000002_issue_batch` and
/// `m20261207_000003_issue_batch_waits`) in a new shape, for what a profile of issuance showed
/// (`docs/performance.md`):
///
/// - **The batch as typed arrays**, one per column, instead of JSON documents. The issuance
///   writer binds them in PostgreSQL's binary format and the function reads them with
///   `unnest`, so the server no longer parses a JSON text of every certificate's PEM.
/// - **The certificates are inserted before the audit chain's head is swapped**, so a batch's
///   inserts run while the batch before it commits; only the swap, the audit records, the
///   webhook deliveries and the commit follow one another. A swap that fails now has rows to
///   undo, so it raises SQLSTATE `FC001` (the issuance writer reads it as `head`); so does a
///   wait for the batch before that passes 20 ms.
/// - **A batch waits for the one before it on a lock, not by sleeping.** Each batch holds an
///   advisory lock named by the head it leaves until it ends; the next, finding the head
///   still behind the one it chains from, waits on that lock (at most 20 ms: with its own keys
///   locked, the batch before may be waiting for it). The function before this one slept a
///   millisecond at a time, and its `UPDATE` never waited on the row lock as its comment said:
///   an `UPDATE` whose condition fails on the committed row skips it without waiting.
///   Sleeping (a millisecond, 20 times at most) remains only where that lock is not held: the
///   batch sent ahead has not started yet, or it ended without moving the head.
/// - **A head moved by another appender is found before anything is inserted** (it is past
///   the one the batch chains from, or at it with another hash), and answered `head` as
///   before.
///
/// What is checked, what is written and what it answers are otherwise as in
/// `m20261207_000003_issue_batch_waits`, and so are the two rules written there a second time
/// in SQL (what counts against a key's limit, which endpoints want an event).
///
/// This is an overload: the JSON function stays, for an instance of the version before this
/// one still running against the same database during an upgrade.
const CREATE: &str = r#"
CREATE OR REPLACE FUNCTION fleetca_issue_batch(
    k_id uuid[], k_need bigint[], k_max bigint[], p_now timestamptz,
    c_id uuid[], c_name text[], c_kind text[], c_api_key_id uuid[], c_enterprise text[],
    c_serial text[], c_fingerprint text[], c_certificate_pem text[], c_not_before timestamptz[],
    c_not_after timestamptz[], c_created_at timestamptz[], c_revoked_at timestamptz[],
    c_revocation_reason text[], c_device text[], c_supersede_at timestamptz[], c_renewed_by uuid[],
    c_renewed_via text[], c_expiry_warned integer[], c_issuer_id integer[], c_crl_shard smallint[],
    a_seq bigint[], a_at timestamptz[], a_actor_id uuid[], a_actor text[], a_role text[],
    a_action text[], a_target_kind text[], a_target_id text[], a_enterprise text[],
    a_request_id text[], a_client_addr text[], a_outcome text[], a_details text[],
    a_prev_hash text[], a_hash text[],
    p_head_seq bigint, p_head_hash text, p_new_seq bigint, p_new_hash text,
    e_n bigint[], e_event_id text[], e_event_type text[], e_enterprise text[], e_payload text[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    swapped integer;
    current_seq bigint;
    current_hash text;
    waited integer := 0;
    before_ended boolean := false;
    saved_timeout text;
    -- The advisory locks' namespace ('flca') and the batches' names in it.
    lock_space constant integer := 1718379361;
    own_lock constant integer := (coalesce(p_new_seq, 0) & 2147483647)::integer;
    before_lock constant integer := (p_head_seq & 2147483647)::integer;
BEGIN
    IF p_new_seq IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(lock_space, own_lock);
    END IF;
    PERFORM 1 FROM users WHERE id = ANY (k_id) ORDER BY id FOR UPDATE;
    IF EXISTS (
        SELECT 1 FROM unnest(k_id, k_need, k_max) AS k(id, need, max)
        WHERE k.need + (SELECT count(*) FROM certificates c
                        WHERE c.api_key_id = k.id AND c.revoked_at IS NULL
                          AND c.not_after > p_now AND c.supersede_at IS NULL) > k.max
    ) THEN
        RETURN 'limit';
    END IF;
    -- A head moved by another appender (past the one this batch chains from, or at it with
    -- another hash) fails the swap below whatever happens: say so before inserting anything.
    IF p_new_seq IS NOT NULL THEN
        SELECT seq, hash INTO current_seq, current_hash FROM audit_head WHERE id = 1;
        IF current_seq IS NULL OR current_seq > p_head_seq
            OR (current_seq = p_head_seq AND current_hash <> p_head_hash) THEN
            RETURN 'head';
        END IF;
    END IF;
    -- The columns by name: one a later migration adds takes its default here.
    INSERT INTO certificates (id, name, kind, api_key_id, enterprise, serial, fingerprint, certificate_pem, not_before, not_after, created_at, revoked_at, revocation_reason, device, supersede_at, renewed_by, renewed_via, expiry_warned, issuer_id, crl_shard)
        SELECT * FROM unnest(c_id, c_name, c_kind, c_api_key_id, c_enterprise, c_serial, c_fingerprint, c_certificate_pem, c_not_before, c_not_after, c_created_at, c_revoked_at, c_revocation_reason, c_device, c_supersede_at, c_renewed_by, c_renewed_via, c_expiry_warned, c_issuer_id, c_crl_shard);
    IF p_new_seq IS NOT NULL THEN
        LOOP
            UPDATE audit_head SET seq = p_new_seq, hash = p_new_hash
                WHERE id = 1 AND seq = p_head_seq AND hash = p_head_hash;
            GET DIAGNOSTICS swapped = ROW_COUNT;
            EXIT WHEN swapped > 0;
            SELECT seq, hash INTO current_seq, current_hash FROM audit_head WHERE id = 1;
            -- The head this batch chains from committed since the UPDATE: go round again.
            IF current_seq = p_head_seq AND current_hash = p_head_hash AND waited < 20 THEN
                waited := waited + 1;
                CONTINUE;
            END IF;
            IF current_seq IS NULL OR current_seq >= p_head_seq OR before_ended OR waited >= 20 THEN
                RAISE EXCEPTION USING ERRCODE = 'FC001', MESSAGE = 'the audit chain''s head moved';
            END IF;
            waited := waited + 1;
            IF pg_try_advisory_lock_shared(lock_space, before_lock) THEN
                -- The batch before has not started, or it ended without moving the head.
                PERFORM pg_advisory_unlock_shared(lock_space, before_lock);
                PERFORM pg_sleep(0.001);
            ELSE
                -- It is running: wait for its end (once it has ended, the head is this
                -- batch's to move, or it never will be). The lock is the transaction's, so
                -- nothing outlives the batch.
                saved_timeout := current_setting('lock_timeout');
                BEGIN
                    PERFORM set_config('lock_timeout', '20ms', true);
                    PERFORM pg_advisory_xact_lock_shared(lock_space, before_lock);
                    PERFORM set_config('lock_timeout', saved_timeout, true);
                EXCEPTION WHEN lock_not_available THEN
                    RAISE EXCEPTION USING ERRCODE = 'FC001', MESSAGE = 'the batch before did not end within 20 ms';
                END;
                before_ended := true;
            END IF;
        END LOOP;
    END IF;
    INSERT INTO audit_log (seq, at, actor_id, actor, role, action, target_kind, target_id, enterprise, request_id, client_addr, outcome, details, prev_hash, hash)
        SELECT * FROM unnest(a_seq, a_at, a_actor_id, a_actor, a_role, a_action, a_target_kind, a_target_id, a_enterprise, a_request_id, a_client_addr, a_outcome, a_details, a_prev_hash, a_hash);
    INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload, status, attempts, next_attempt_at, created_at)
        SELECT w.id, e.event_id, e.event_type, e.payload, 'pending', 0, p_now, p_now
        FROM unnest(e_n, e_event_id, e_event_type, e_enterprise, e_payload) AS e(n, event_id, event_type, enterprise, payload)
        JOIN webhooks w ON w.is_active
            AND e.event_type = ANY (string_to_array(w.events, ','))
            AND (w.enterprise IS NULL OR w.enterprise = e.enterprise)
        ORDER BY e.n, w.id;
    RETURN 'ok';
END
$$;
"#;

const DROP: &str = "DROP FUNCTION IF EXISTS fleetca_issue_batch(
    uuid[], bigint[], bigint[], timestamptz,
    uuid[], text[], text[], uuid[], text[], text[], text[], text[], timestamptz[], timestamptz[],
    timestamptz[], timestamptz[], text[], text[], timestamptz[], uuid[], text[], integer[],
    integer[], smallint[],
    bigint[], timestamptz[], uuid[], text[], text[], text[], text[], text[], text[], text[],
    text[], text[], text[], text[], text[],
    bigint, text, bigint, text,
    bigint[], text[], text[], text[], text[])";

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        super::on_postgres(m, CREATE).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        super::on_postgres(m, DROP).await
    }
}
