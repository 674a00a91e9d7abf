//! fleetca's issuance rules, as one pure function of a batch: [`plan`] decides every
//! certificate of a group commit from what storage read in the batch's transaction
//! ([`BatchFacts`]) and says what to write ([`BatchPlan`]). Storage reads and writes
//! (`fleetca_storage::issuance`); the rules are here, and tested here without a database:
//!
//! - **Limits**: an API key holds at most [`super::issuer::MAX_ACTIVE_PER_KEY`] counted
//!   certificates, a device [`super::issuer::MAX_ACTIVE_PER_DEVICE`]; a certificate counts
//!   while it is not revoked, not expired and not in a renewal's grace.
//! - **Devices**: a device certificate needs its device enabled when it commits.
//! - **Renewal chains**: the renewed certificate must be neither revoked nor superseded; it
//!   stays valid through its grace and stops counting; a second renewal within the grace
//!   revokes the first at once, and so does the certificate the renewed one had renewed, so
//!   a chain keeps at most one certificate in its grace. A certificate a manager renewed
//!   (over the API) may not renew itself over EST: only its renewal may.
//! - **Claims**: an enrollment takes one use of its claim, which must be unrevoked,
//!   unexpired and not used up.
//! - **Audit**: each stored certificate's record names it and says what it is (serial,
//!   kind, name, expiry, device, what its renewal superseded now).

use chrono::{DateTime, Utc};
use fleetca_storage::Certificate;
use fleetca_storage::StorageError;
use fleetca_storage::certificates::SUPERSEDED;
use fleetca_storage::issuance::{BatchFacts, BatchPlan, IssueJob, Planner, Stored, Supersession};
use serde_json::json;
use uuid::Uuid;

/// The rules as storage's issuance writer takes them.
pub fn planner() -> Planner {
    std::sync::Arc::new(plan)
}

/// Whether a certificate counts against its owner's limit at `now` (the instant storage
/// counted at, so what is taken off a count is judged as the count was).
fn counts(c: &Certificate, now: DateTime<Utc>) -> bool {
    c.revoked_at.is_none() && c.not_after > now && c.supersede_at.is_none()
}

/// Decides a batch, in order: each job sees the effects of the ones before it.
pub fn plan(mut facts: BatchFacts, jobs: &[IssueJob]) -> BatchPlan {
    let mut plan = BatchPlan::default();
    for job in jobs {
        let result = decide(&mut facts, &mut plan, job);
        plan.results.push(result);
    }
    plan
}

/// What the job's renewal does, decided before its limits.
struct RenewalStep {
    /// Counted certificates it takes off its owner's count (the renewed one and that one's
    /// earlier renewal).
    relief: u64,
    /// The earlier renewal, revoked now.
    discard: Option<Certificate>,
    mark: Option<Supersession>,
}

fn renewal(facts: &BatchFacts, job: &IssueJob, id: Uuid) -> Result<RenewalStep, StorageError> {
    let mut step = RenewalStep {
        relief: 0,
        discard: None,
        mark: None,
    };
    let Some(r) = job.cert.renews else {
        return Ok(step);
    };
    let old = facts.renewed.get(&r.old).ok_or(StorageError::NotFound)?;
    if old.revoked_at.is_some() || old.supersede_at.is_some_and(|t| t <= job.now) {
        return Err(StorageError::Conflict(
            "the certificate is revoked or already superseded".into(),
        ));
    }
    if r.via == "est" && old.renewed_via.as_deref() == Some("api") {
        return Err(StorageError::Conflict(
            "a manager renewed this certificate; only its renewal may renew itself".into(),
        ));
    }
    step.relief += u64::from(counts(old, facts.now));
    if let Some(earlier) = old.renewed_by.and_then(|e| facts.renewed.get(&e))
        && earlier.revoked_at.is_none()
    {
        step.relief += u64::from(counts(earlier, facts.now));
        step.discard = Some(earlier.clone());
    }
    step.mark = Some(Supersession {
        old: old.id,
        at: old.supersede_at.unwrap_or(r.supersede_at),
        by: id,
        via: r.via,
    });
    Ok(step)
}

fn decide(facts: &mut BatchFacts, plan: &mut BatchPlan, job: &IssueJob) -> Result<Stored, StorageError> {
    // Time-ordered: a batch's rows go to the end of the primary key's index, on one or two
    // pages, where random ids each dirtied a page of their own for the commit and the
    // checkpoint to write.
    let id = Uuid::now_v7();
    let step = renewal(facts, job, id)?;
    let c = &job.cert;
    if let Some(device) = &c.device
        && job.max_active.is_some()
        && !facts.device_enabled.get(device).copied().unwrap_or(false)
    {
        return Err(StorageError::Conflict("the device is disabled or deleted".into()));
    }
    let key_count = job.max_active.zip(c.api_key_id).map(|(max, k)| {
        (
            max,
            facts
                .key_active
                .get(&k)
                .copied()
                .unwrap_or(0)
                .saturating_sub(step.relief),
        )
    });
    let device_count = job.max_active.zip(c.device.as_ref()).map(|(max, d)| {
        let n = facts.device_active.get(d).copied().unwrap_or(0);
        (max, n.saturating_sub(step.relief))
    });
    if [key_count, device_count].into_iter().flatten().any(|(max, n)| n >= max) {
        return Err(StorageError::LimitReached);
    }
    if let Some(claim) = c.claim {
        let taken = plan.claim_uses.get(&claim).copied().unwrap_or(0);
        let usable = facts
            .claims
            .get(&claim)
            .is_some_and(|k| k.revoked_at.is_none() && k.expires_at > job.now && k.uses + taken < k.max_uses);
        if !usable {
            return Err(StorageError::Conflict(
                "the claim is revoked, expired or used up".into(),
            ));
        }
        *plan.claim_uses.entry(claim).or_default() += 1;
    }
    if let (Some(k), Some((_, n))) = (c.api_key_id, key_count) {
        facts.key_active.insert(k, n + 1);
    }
    if let (Some(d), Some((_, n))) = (c.device.clone(), device_count) {
        facts.device_active.insert(d, n + 1);
    }
    let certificate = Certificate {
        id,
        name: c.name.clone(),
        kind: c.kind.clone(),
        api_key_id: c.api_key_id,
        enterprise: c.enterprise.clone(),
        serial: c.serial.clone(),
        fingerprint: c.fingerprint.clone(),
        certificate_pem: c.certificate_pem.clone(),
        not_before: c.not_before,
        not_after: c.not_after,
        created_at: job.now,
        revoked_at: None,
        revocation_reason: None,
        device: c.device.clone(),
        supersede_at: None,
        renewed_by: None,
        renewed_via: None,
        issuer_id: c.issuer_id,
        crl_shard: c.crl_shard,
        expiry_warned: None,
    };
    // Later jobs of this batch see this one's effects.
    let mut discarded: Vec<Certificate> = step.discard.into_iter().collect();
    if let Some(mark) = step.mark {
        if let Some(o) = facts.renewed.get_mut(&mark.old) {
            o.supersede_at = Some(mark.at);
            o.renewed_by = Some(mark.by);
            o.renewed_via = Some(mark.via.to_owned());
        }
        facts.renewed.insert(id, certificate.clone());
        plan.supersessions.push(mark);
        discarded.extend(facts.predecessors.remove(&mark.old).unwrap_or_default());
    }
    for d in &mut discarded {
        d.revoked_at = Some(job.now);
        d.revocation_reason = Some(SUPERSEDED.into());
        plan.discards.push(d.id);
        facts.renewed.insert(d.id, d.clone());
    }
    if let Some(mut record) = job.audit.clone() {
        record.target_kind = "certificate".into();
        record.target_id = id.to_string();
        record.enterprise = Some(certificate.enterprise.clone());
        if let serde_json::Value::Object(details) = &mut record.details {
            details.insert("serial".into(), certificate.serial.clone().into());
            details.insert("kind".into(), certificate.kind.clone().into());
            details.insert("name".into(), certificate.name.clone().into());
            details.insert("expires_at".into(), json!(certificate.not_after));
            if let Some(device) = &certificate.device {
                details.insert("device".into(), device.clone().into());
            }
            if !discarded.is_empty() {
                let ids: Vec<String> = discarded.iter().map(|d| d.id.to_string()).collect();
                details.insert("superseded_now".into(), ids.into());
            }
        }
        plan.records.push(record);
    }
    plan.rows.push(certificate.clone());
    Ok(Stored { certificate, discarded })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use fleetca_storage::Claim;
    use fleetca_storage::certificates::{NewCertificate, Renewal};

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn new(api_key: Option<Uuid>, device: Option<&str>) -> NewCertificate {
        NewCertificate {
            name: "c".into(),
            kind: if device.is_some() { "device" } else { "client" }.into(),
            api_key_id: api_key,
            enterprise: "acme".into(),
            serial: "01".into(),
            fingerprint: "ff".into(),
            certificate_pem: String::new(),
            not_before: now(),
            not_after: now() + Duration::days(365),
            device: device.map(str::to_owned),
            renews: None,
            issuer_id: 1,
            crl_shard: None,
            claim: None,
        }
    }

    fn job(cert: NewCertificate, max: Option<u64>) -> IssueJob {
        IssueJob {
            cert,
            audit: None,
            max_active: max,
            now: now(),
        }
    }

    fn stored(plan_for: &IssueJob) -> Certificate {
        let mut facts = BatchFacts::at(now());
        facts
            .device_enabled
            .extend(plan_for.cert.device.clone().map(|d| (d, true)));
        let mut p = plan(facts, std::slice::from_ref(plan_for));
        p.results.remove(0).unwrap().certificate
    }

    #[test]
    fn an_api_keys_limit_counts_the_batch_itself() {
        let key = Uuid::new_v4();
        let mut facts = BatchFacts::at(now());
        facts.key_active.insert(key, 8);
        let jobs: Vec<IssueJob> = (0..3).map(|_| job(new(Some(key), None), Some(10))).collect();
        let p = plan(facts, &jobs);
        assert!(p.results[0].is_ok() && p.results[1].is_ok());
        assert!(matches!(p.results[2], Err(StorageError::LimitReached)));
        assert_eq!(p.rows.len(), 2, "a refused job writes nothing");
        // Without a limit (a server certificate), nothing is counted.
        let p = plan(BatchFacts::at(now()), &[job(new(None, None), None)]);
        assert!(p.results[0].is_ok());
    }

    #[test]
    fn a_device_certificate_needs_its_device_enabled() {
        let mut facts = BatchFacts::at(now());
        facts.device_enabled.insert("acme/off".into(), false);
        let jobs = [
            job(new(None, Some("acme/off")), Some(2)),
            job(new(None, Some("acme/gone")), Some(2)),
        ];
        let p = plan(facts, &jobs);
        for r in &p.results {
            assert!(matches!(r, Err(StorageError::Conflict(why)) if why.contains("disabled or deleted")));
        }
        assert!(p.rows.is_empty());
    }

    #[test]
    fn a_renewal_supersedes_and_a_second_renewal_discards_the_first() {
        let old = stored(&job(new(None, Some("acme/d1")), Some(2)));
        let renew = |via: &'static str| {
            let mut c = new(None, Some("acme/d1"));
            c.renews = Some(Renewal {
                old: old.id,
                supersede_at: now() + Duration::hours(1),
                via,
            });
            job(c, Some(2))
        };
        let mut facts = BatchFacts::at(now());
        facts.device_enabled.insert("acme/d1".into(), true);
        facts.device_active.insert("acme/d1".into(), 2);
        facts.renewed.insert(old.id, old.clone());
        let p = plan(facts, &[renew("est"), renew("est")]);
        let first = p.results[0].as_ref().unwrap();
        let second = p.results[1].as_ref().unwrap();
        assert!(first.discarded.is_empty());
        assert_eq!(second.discarded.len(), 1, "the first renewal is revoked at once");
        assert_eq!(second.discarded[0].id, first.certificate.id);
        assert_eq!(second.discarded[0].revocation_reason.as_deref(), Some(SUPERSEDED));
        assert_eq!(p.discards, vec![first.certificate.id]);
        // Both marks keep the first grace's end.
        assert!(
            p.supersessions
                .iter()
                .all(|s| s.old == old.id && s.at == now() + Duration::hours(1))
        );
    }

    #[test]
    fn a_revoked_or_manager_renewed_certificate_does_not_renew_itself() {
        let mut old = stored(&job(new(None, Some("acme/d1")), Some(2)));
        let mut c = new(None, Some("acme/d1"));
        c.renews = Some(Renewal {
            old: old.id,
            supersede_at: now(),
            via: "est",
        });
        let renew = job(c, Some(2));
        let facts = |old: &Certificate| {
            let mut f = BatchFacts::at(now());
            f.device_enabled.insert("acme/d1".into(), true);
            f.renewed.insert(old.id, old.clone());
            f
        };
        old.renewed_via = Some("api".into());
        let p = plan(facts(&old), std::slice::from_ref(&renew));
        assert!(matches!(&p.results[0], Err(StorageError::Conflict(why)) if why.contains("a manager renewed")));
        old.revoked_at = Some(now());
        let p = plan(facts(&old), std::slice::from_ref(&renew));
        assert!(matches!(&p.results[0], Err(StorageError::Conflict(why)) if why.contains("revoked")));
        let p = plan(BatchFacts::at(now()), &[renew]);
        assert!(matches!(p.results[0], Err(StorageError::NotFound)));
    }

    #[test]
    fn an_enrollment_takes_one_use_of_a_usable_claim() {
        let claim = Claim {
            id: Uuid::new_v4(),
            name: "line 1".into(),
            enterprise: "acme".into(),
            tenant: "acme".into(),
            certificate_id: Uuid::new_v4(),
            max_uses: 2,
            uses: 1,
            expires_at: now() + Duration::days(1),
            register_unknown: true,
            validity_days: 30,
            created_by: "admin".into(),
            created_at: now(),
            revoked_at: None,
        };
        let enroll = |device: &str| {
            let mut c = new(None, Some(device));
            c.claim = Some(claim.id);
            job(c, Some(2))
        };
        let mut facts = BatchFacts::at(now());
        facts
            .device_enabled
            .extend([("acme/a".into(), true), ("acme/b".into(), true)]);
        facts.claims.insert(claim.id, claim.clone());
        let p = plan(facts, &[enroll("acme/a"), enroll("acme/b")]);
        assert!(p.results[0].is_ok());
        assert!(matches!(&p.results[1], Err(StorageError::Conflict(why)) if why.contains("used up")));
        assert_eq!(p.claim_uses.get(&claim.id), Some(&1));
    }

    #[test]
    fn the_audit_record_names_what_was_stored() {
        let mut j = job(new(Some(Uuid::new_v4()), None), Some(10));
        j.audit = Some(fleetca_storage::NewAudit {
            actor_id: None,
            actor: "admin".into(),
            role: "admin".into(),
            action: "certificate.create".into(),
            target_kind: String::new(),
            target_id: String::new(),
            enterprise: None,
            request_id: None,
            client_addr: None,
            outcome: "success".into(),
            event: None,
            ends_sessions: false,
            details: json!({}),
        });
        let p = plan(BatchFacts::at(now()), &[j]);
        let id = p.results[0].as_ref().unwrap().certificate.id;
        let r = &p.records[0];
        assert_eq!(
            (r.target_kind.as_str(), r.target_id.clone()),
            ("certificate", id.to_string())
        );
        assert_eq!(r.enterprise.as_deref(), Some("acme"));
        assert_eq!(r.details["serial"], "01");
        assert_eq!(r.details["kind"], "client");
    }
}
