//! MQTT client certificates (of API keys) and broker server certificates, as the
//! management API sees them.
//!
//! Create: the API key must be an active service account the caller manages → the issuer
//! signs and stores (limit checked in the same transaction). Revoke: mark in the database
//! → publish a CRL listing it → return. Server certificates are the admins' alone: they are
//! neither listed nor shown nor revocable through the MQTT certificate calls, since
//! revoking one would take a broker's TLS down for every client.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleetca_ca::crl::Reason;
use fleetca_storage::certificates::CertificateFilter;
use fleetca_storage::revocations::RevokeQueue;
use fleetca_storage::{Certificate, StorageError, Store};
use uuid::Uuid;

use crate::domain::AuditAction;
use crate::domain::CertificateKind;
use crate::domain::{CertificateName, Listing, PageRequest, Principal, Role, ServerCertRequest, ValidityHours};
use crate::identity::tokens::Tokens;
use crate::outbox::audit;
use crate::outbox::changes::Changes;
use crate::pki::issuer::CsrKey;
use crate::pki::issuer::{Issued, Issuer, KeySource};
use crate::support::Error;
use crate::support::clock::Clock;
use crate::support::limits::RateLimiter;
use serde_json::json;

/// A validated create request.
#[derive(Debug)]
pub struct CreateCertificate {
    pub name: CertificateName,
    pub api_key_id: Uuid,
    pub validity: ValidityHours,
    /// A CSR's public key; without one fleetca makes the key.
    pub csr: Option<CsrKey>,
}

/// Where a certificate stands now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    Revoked,
    Expired,
}

impl Status {
    pub fn of(c: &Certificate, now: DateTime<Utc>) -> Self {
        if c.revoked_at.is_some() {
            Status::Revoked
        } else if c.not_after <= now {
            Status::Expired
        } else {
            Status::Active
        }
    }
}

/// A certificate and its status at the time it was read.
#[derive(Debug)]
pub struct Record {
    pub certificate: Certificate,
    pub status: Status,
}

/// A certificate just created, with its key when fleetca made it.
pub struct Created {
    pub record: Record,
    pub private_key_pem: Option<String>,
    pub ca_certificate_pem: String,
}

/// The certificate flows of the management API (built by the wiring in `app.rs`).
pub struct CertificateService {
    pub(crate) store: Store,
    pub(crate) issuer: Arc<Issuer>,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) changes: Arc<Changes>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Creations and revocations by managers, per enterprise.
    pub(crate) limiter: RateLimiter,
    /// Single revocations, committed in groups.
    pub(crate) revocations: RevokeQueue,
}

/// What a bulk revocation names.
pub enum RevokeMany {
    /// These certificates (client, device or claim).
    Ids(Vec<Uuid>),
    /// Every certificate of this API key not yet revoked.
    ApiKey(Uuid),
}

/// The outcome of a bulk revocation.
pub struct BulkRevoked {
    /// The certificates this call revoked.
    pub revoked: Vec<Uuid>,
    /// How many were revoked already (left as they were).
    pub already_revoked: usize,
}

/// The kinds the MQTT certificate calls show: server certificates are the admins' alone.
pub const MQTT_KINDS: [CertificateKind; 3] = [CertificateKind::Client, CertificateKind::Device, CertificateKind::Claim];

fn can_see(caller: &Principal, cert: &Certificate) -> bool {
    if CertificateKind::Server.is(&cert.kind) {
        return caller.role == Role::Admin;
    }
    match caller.role {
        Role::Admin => true,
        Role::Manager => cert.enterprise == caller.enterprise,
        Role::Service => cert.api_key_id == Some(caller.id),
    }
}

impl CertificateService {
    /// Counts a creation or revocation against the caller's enterprise; admins are not
    /// limited (they are the operators the limit protects).
    fn count_change(&self, caller: &Principal) -> Result<(), Error> {
        if caller.role == Role::Admin {
            return Ok(());
        }
        self.limiter.take(&caller.enterprise)
    }

    fn record(&self, certificate: Certificate) -> Record {
        Record {
            status: Status::of(&certificate, self.clock.now()),
            certificate,
        }
    }

    /// Issues a client certificate for an API key the caller manages.
    pub async fn create(&self, caller: &Principal, input: CreateCertificate) -> Result<Created, Error> {
        let owner = match self.tokens.user(input.api_key_id).await? {
            Some(u) if caller.manages(&u.enterprise) && u.is_service_account => u,
            _ => {
                return Err(Error::invalid(
                    "api_key_id",
                    "no API key (service account) with this id exists in your scope",
                ));
            }
        };
        if !owner.is_active {
            return Err(Error::invalid(
                "api_key_id",
                "this API key is deactivated; certificates can only be issued to active keys",
            ));
        }
        self.count_change(caller)?;
        let from_csr = input.csr.is_some();
        let key = match input.csr {
            Some(csr) => KeySource::Csr(csr.into_inner()),
            None => KeySource::Generate,
        };
        let Issued {
            certificate,
            private_key_pem,
            ..
        } = self
            .issuer
            .issue_client(
                &owner,
                input.name,
                key,
                input.validity,
                None,
                Some(audit::by(
                    caller,
                    AuditAction::CertificateCreate,
                    "certificate",
                    "",
                    None,
                    json!({"api_key_id": owner.id, "api_key": owner.username, "from_csr": from_csr}),
                )),
            )
            .await?;
        tracing::debug!(certificate_id = %certificate.id, by = %caller.username, "client certificate created");
        Ok(Created {
            record: self.record(certificate),
            private_key_pem,
            ca_certificate_pem: self.issuer.ca_certificate_pem().to_owned(),
        })
    }

    /// Issues a TLS server certificate for a broker; returns it with its new private key.
    /// Only admins may call this (the handler's extractor says so).
    pub async fn create_server(
        &self,
        caller: &Principal,
        request: &ServerCertRequest,
    ) -> Result<(Record, String), Error> {
        let names: Vec<&str> = request.dns_names.iter().map(|d| d.as_str()).collect();
        let record = audit::by(
            caller,
            AuditAction::CertificateCreate,
            "certificate",
            "",
            None,
            json!({"kind": "server", "dns_names": names}),
        );
        let (cert, key) = self.issuer.issue_server(request, Some(record)).await?;
        Ok((self.record(cert), key))
    }

    /// The root certificate (PEM) new certificates chain to.
    pub fn ca_certificate_pem(&self) -> &str {
        self.issuer.ca_certificate_pem()
    }

    /// The intermediates (PEM) a new certificate's holder presents after it.
    pub fn chain_pem(&self) -> &str {
        self.issuer.chain_pem()
    }

    /// The trust bundle a broker loads (see [`crate::pki::authorities::Authorities::bundle_pem`]).
    pub fn trust_bundle_pem(&self) -> String {
        self.issuer.trust_bundle_pem()
    }

    /// One page of the client certificates the caller may see.
    pub async fn list(
        &self,
        caller: &Principal,
        mut filter: CertificateFilter,
        page: PageRequest,
    ) -> Result<Listing<Record>, Error> {
        if filter.kinds.is_empty() {
            filter.kinds = vec![CertificateKind::Client.as_str().into()];
        }
        if filter.kinds.iter().any(|k| !MQTT_KINDS.iter().any(|m| m.is(k))) {
            return Err(Error::invalid("kind", "must be client, device or claim"));
        }
        if !caller.pin_enterprise(&mut filter.enterprise) {
            return Ok(Listing::empty());
        }
        if caller.role == Role::Service {
            // An API key sees its own client certificates alone.
            if filter.api_key_id.is_some_and(|k| k != caller.id) {
                return Ok(Listing::empty());
            }
            filter.api_key_id = Some(caller.id);
            filter.kinds = vec![CertificateKind::Client.as_str().into()];
        }
        let now = self.clock.now();
        let listing: Listing<Certificate> = self.store.list_certificates(&filter, page.storage(), now).await?.into();
        Ok(listing.map(|c| self.record(c)))
    }

    async fn visible(&self, caller: &Principal, id: Uuid, kinds: &[CertificateKind]) -> Result<Certificate, Error> {
        match self.store.certificate(id).await {
            Ok(c) if kinds.iter().any(|k| k.is(&c.kind)) && can_see(caller, &c) => Ok(c),
            Ok(_) | Err(StorageError::NotFound) => Err(Error::NotFound("certificate")),
            Err(e) => Err(e.into()),
        }
    }

    /// One client, device or claim certificate the caller may see.
    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<Record, Error> {
        Ok(self.record(self.visible(caller, id, &MQTT_KINDS).await?))
    }

    /// Revokes a client certificate the caller manages and returns once the CRL that lists
    /// it is published. Revoking a revoked certificate returns it unchanged.
    pub async fn revoke(&self, caller: &Principal, id: Uuid, reason: Reason) -> Result<Record, Error> {
        self.revoke_kind(caller, id, &MQTT_KINDS, reason).await
    }

    /// One page of the broker server certificates (admins only, by the handler's extractor).
    pub async fn list_server(
        &self,
        mut filter: CertificateFilter,
        page: PageRequest,
    ) -> Result<Listing<Record>, Error> {
        filter.kinds = vec![CertificateKind::Server.as_str().into()];
        filter.enterprise = None;
        filter.api_key_id = None;
        let listing: Listing<Certificate> = self
            .store
            .list_certificates(&filter, page.storage(), self.clock.now())
            .await?
            .into();
        Ok(listing.map(|c| self.record(c)))
    }

    /// One server certificate (admins only).
    pub async fn get_server(&self, caller: &Principal, id: Uuid) -> Result<Record, Error> {
        Ok(self.record(self.visible(caller, id, &[CertificateKind::Server]).await?))
    }

    /// Revokes a server certificate (admins only): brokers presenting it are refused by
    /// clients that check the CRL.
    pub async fn revoke_server(&self, caller: &Principal, id: Uuid, reason: Reason) -> Result<Record, Error> {
        self.revoke_kind(caller, id, &[CertificateKind::Server], reason).await
    }

    /// Revokes many certificates at once, all or nothing: every id must name a client,
    /// device or claim certificate the caller manages (else nothing is revoked and the bad
    /// ids are named), or every certificate of an API key the caller manages. Returns once a
    /// CRL listing them is published; one publication serves them all.
    pub async fn revoke_many(
        &self,
        caller: &Principal,
        target: RevokeMany,
        reason: Reason,
    ) -> Result<BulkRevoked, Error> {
        if caller.role == Role::Service {
            return Err(Error::Forbidden(
                "Only a manager or admin may revoke certificates.".into(),
            ));
        }
        let ids = match target {
            RevokeMany::Ids(ids) => {
                let found: std::collections::HashMap<Uuid, Certificate> = self
                    .store
                    .certificates_by_ids(&ids)
                    .await?
                    .into_iter()
                    .map(|c| (c.id, c))
                    .collect();
                let mut errors = crate::domain::FieldErrors::new();
                for (i, id) in ids.iter().enumerate() {
                    let ok = found.get(id).is_some_and(|c| {
                        MQTT_KINDS.iter().any(|m| m.is(&c.kind)) && can_see(caller, c) && caller.manages(&c.enterprise)
                    });
                    if !ok {
                        errors.insert(
                            format!("ids.{i}"),
                            vec![format!("no client, device or claim certificate {id} in your scope")],
                        );
                    }
                }
                if !errors.is_empty() {
                    return Err(Error::Invalid(errors));
                }
                ids
            }
            RevokeMany::ApiKey(key) => match self.tokens.user(key).await? {
                Some(u) if caller.manages(&u.enterprise) && u.is_service_account => {
                    self.store.api_key_certificate_ids(key).await?
                }
                _ => {
                    return Err(Error::invalid(
                        "api_key_id",
                        "no API key (service account) with this id exists in your scope",
                    ));
                }
            },
        };
        self.count_change(caller)?;
        let revoked = self
            .store
            .revoke_certificates(
                &ids,
                reason.name(),
                &audit::revoked_by(caller, None, reason.name()),
                self.clock.now(),
            )
            .await?;
        self.changes.revoked(&revoked).await?;
        if !revoked.is_empty() {
            tracing::info!(count = revoked.len(), %reason, by = %caller.username, "certificates revoked in bulk");
        }
        Ok(BulkRevoked {
            already_revoked: ids.len().saturating_sub(revoked.len()),
            revoked: revoked.into_iter().map(|c| c.id).collect(),
        })
    }

    async fn revoke_kind(
        &self,
        caller: &Principal,
        id: Uuid,
        kinds: &[CertificateKind],
        reason: Reason,
    ) -> Result<Record, Error> {
        let cert = self.visible(caller, id, kinds).await?;
        if !caller.manages(&cert.enterprise) {
            return Err(Error::Forbidden(
                "Only a manager or admin may revoke certificates.".into(),
            ));
        }
        if cert.revoked_at.is_none() {
            self.count_change(caller)?;
        }
        let record = audit::by(
            caller,
            AuditAction::CertificateRevoke,
            "certificate",
            &cert.id.to_string(),
            Some(&cert.enterprise),
            json!({"serial": cert.serial, "reason": reason.name(), "kind": cert.kind}),
        );
        let (cert, changed) = self
            .revocations
            .revoke(cert.id, reason.name(), record, self.clock.now())
            .await?;
        if changed {
            self.changes.revoked(std::slice::from_ref(&cert)).await?;
            tracing::info!(certificate_id = %cert.id, serial = %cert.serial, %reason, by = %caller.username, "certificate revoked");
        }
        Ok(self.record(cert))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::{Kit, admin, manager};
    use crate::domain::DnsName;
    use crate::pki::issuer::MAX_ACTIVE_PER_KEY;

    /// The first page of every certificate, as an admin sees it.
    async fn everything(kit: &Kit) -> Listing<Record> {
        let page = PageRequest::parse(None, None).unwrap();
        kit.certificates
            .list(&admin(), CertificateFilter::default(), page)
            .await
            .unwrap()
    }

    fn create(key: Uuid) -> CreateCertificate {
        CreateCertificate {
            name: CertificateName::parse("c").unwrap(),
            api_key_id: key,
            validity: ValidityHours::parse(None).unwrap(),
            csr: None,
        }
    }

    #[tokio::test]
    async fn an_api_key_holds_at_most_ten_active_certificates_even_when_asked_at_once() {
        let kit = Arc::new(Kit::new().await);
        let (key, _) = kit.api_key("svc-limit", "acme").await;
        let mut tasks = Vec::new();
        for _ in 0..14 {
            let kit = kit.clone();
            let id = key.id;
            tasks.push(tokio::spawn(async move {
                kit.certificates.create(&admin(), create(id)).await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(Error::Conflict(why)) => assert!(why.contains("10 active"), "{why}"),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(ok, MAX_ACTIVE_PER_KEY);
        // Revoking one makes room for one.
        let listing = everything(&kit).await;
        let first = &listing.items[0].certificate;
        kit.certificates
            .revoke(&admin(), first.id, Reason::Superseded)
            .await
            .unwrap();
        kit.certificates.create(&admin(), create(key.id)).await.unwrap();
        assert!(matches!(
            kit.certificates.create(&admin(), create(key.id)).await,
            Err(Error::Conflict(_))
        ));
    }

    #[tokio::test]
    async fn managers_issue_only_within_their_enterprise() {
        let kit = Kit::new().await;
        let (key, _) = kit.api_key("svc-other", "globex").await;
        assert!(matches!(
            kit.certificates.create(&manager("acme"), create(key.id)).await,
            Err(Error::Invalid(e)) if e.contains_key("api_key_id")
        ));
        assert!(
            kit.certificates
                .create(&manager("globex"), create(key.id))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn server_certificates_are_the_admins_alone() {
        let kit = Kit::new().await;
        let request = ServerCertRequest {
            name: "broker".into(),
            dns_names: vec![DnsName::parse("broker.test").unwrap()],
            ip_addresses: vec![],
            validity: chrono::Duration::days(30),
        };
        let (record, key) = kit.certificates.create_server(&admin(), &request).await.unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let id = record.certificate.id;
        let same_enterprise = manager("default");
        assert!(matches!(
            kit.certificates.get(&same_enterprise, id).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            kit.certificates
                .revoke(&same_enterprise, id, Reason::KeyCompromise)
                .await,
            Err(Error::NotFound(_))
        ));
        // Not an MQTT certificate, even for an admin.
        assert!(matches!(
            kit.certificates.get(&admin(), id).await,
            Err(Error::NotFound(_))
        ));
        let listing = everything(&kit).await;
        assert_eq!(listing.count, 0);
        assert_eq!(
            kit.certificates.get_server(&admin(), id).await.unwrap().status,
            Status::Active
        );
        let revoked = kit
            .certificates
            .revoke_server(&admin(), id, Reason::Superseded)
            .await
            .unwrap();
        assert_eq!(revoked.status, Status::Revoked);
        assert_eq!(kit.crl.current().unwrap().entries, 1);
    }
    #[tokio::test]
    async fn the_audit_chain_holds_when_issuance_and_other_changes_interleave() {
        // On SQLite, issuance appends through its own connection and keeps the chain's head
        // between batches; every other change appends through the pool. Each moves the
        // head the other holds, so every issuance after one must read it again.
        let kit = Arc::new(Kit::new().await);
        let mut tasks = Vec::new();
        for i in 0..4 {
            let kit = kit.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..3 {
                    let (key, _) = kit.api_key(&format!("svc-chain-{i}-{n}"), "acme").await;
                    kit.certificate(&key).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let verified = kit.store.verify_audit().await.unwrap();
        let last = verified.unwrap_or_else(|b| panic!("the chain breaks at {}: {}", b.seq, b.why));
        // Twelve keys and twelve certificates, each with its record.
        assert!(last >= 24, "{last} records");
    }

    /// The distribution point a certificate names.
    fn distribution_point(pem: &str) -> String {
        use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
        let der = ::pem::parse(pem).unwrap().into_contents();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::CRLDistributionPoints(points) => match &points.points[0].distribution_point {
                    Some(DistributionPointName::FullName(names)) => match &names[0] {
                        GeneralName::URI(uri) => Some(uri.to_string()),
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            })
            .unwrap()
    }

    #[tokio::test]
    async fn a_revocation_re_signs_only_the_crl_shard_its_certificate_names() {
        use crate::pki::authorities::CRL_SHARDS;
        let kit = Kit::new().await;
        let (key, _) = kit.api_key("svc-shards", "acme").await;
        let mut issued = Vec::new();
        for _ in 0..3 {
            issued.push(kit.certificate(&key).await.record.certificate);
        }
        // Certificates name the shards in turn (from a random one), and the row says which.
        let start = issued[0].crl_shard.unwrap();
        let shard_of = |n: usize| (start + i16::try_from(n).unwrap()) % i16::try_from(CRL_SHARDS).unwrap();
        for (n, cert) in issued.iter().enumerate() {
            let shard = shard_of(n);
            assert_eq!(cert.crl_shard, Some(shard));
            assert_eq!(
                distribution_point(&cert.certificate_pem),
                format!("http://fleetca.test/crl/1/{shard}.der")
            );
        }
        let numbers = |kit: &Kit| {
            let own = kit.crl.current_of(1).unwrap().number;
            let shards: Vec<u64> = (0..CRL_SHARDS)
                .map(|s| kit.crl.current_shard(1, i16::try_from(s).unwrap()).unwrap().number)
                .collect();
            (own, shards)
        };
        let (own_before, shards_before) = numbers(&kit);
        kit.certificates
            .revoke(&admin(), issued[1].id, Reason::KeyCompromise)
            .await
            .unwrap();
        let (own_after, shards_after) = numbers(&kit);
        assert_eq!(own_after, own_before, "the CA's own CRL was re-signed");
        let revoked_shard = usize::try_from(shard_of(1)).unwrap();
        for (shard, (before, after)) in shards_before.iter().zip(&shards_after).enumerate() {
            if shard == revoked_shard {
                assert!(after > before, "shard {shard} was not re-signed");
            } else {
                assert_eq!(after, before, "shard {shard} was re-signed");
            }
        }
        // Its shard lists it, signed by the CA, with its own distribution point as its scope.
        let crl = kit.crl.current_shard(1, shard_of(1)).unwrap();
        let (_, entries) = kit.ca.read_crl(&crl.der).unwrap();
        assert_eq!(
            entries.iter().map(|e| hex::encode(&e.serial)).collect::<Vec<_>>(),
            vec![issued[1].serial.clone()]
        );
        let (_, parsed) = x509_parser::parse_x509_crl(&crl.der).unwrap();
        let idp = parsed
            .extensions()
            .iter()
            .find(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_ISSUER_DISTRIBUTION_POINT)
            .unwrap();
        assert!(idp.critical);
        let scope = format!("/crl/1/{}.der", shard_of(1));
        assert!(idp.value.windows(scope.len()).any(|w| w == scope.as_bytes()));
        assert!(kit.crl.current_shard(1, shard_of(0)).unwrap().entries == 0);
        assert_eq!(kit.crl.current().unwrap().entries, 1);
        // A certificate issued before shards (naming the CA's own CRL) is listed there.
        let mut older = issued[2].clone();
        older.crl_shard = None;
        older.revoked_at = Some(kit.clock.now());
        older.revocation_reason = Some("keyCompromise".into());
        kit.crl.add_revocations(std::iter::once(&older)).await.unwrap();
        let own = kit.crl.current_of(1).unwrap();
        assert!(own.number > own_after && own.entries == 1);
        assert_eq!(kit.crl.current_shard(1, shard_of(2)).unwrap().entries, 0);
        // The file every broker loads holds the CA's own CRL and every shard.
        let (pem, _, _) = kit.crl.all_pem().unwrap();
        let pem = String::from_utf8(pem.to_vec()).unwrap();
        assert_eq!(pem.matches("BEGIN X509 CRL").count(), 1 + usize::from(CRL_SHARDS));
    }
}
