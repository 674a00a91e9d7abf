use futures_util::future::join_all;
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::helpers::{TestApp, assert_field_error, assert_problem};

const CERTS: &str = "/api/v4/manage/mqtt-certificates/";

fn der_of(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

fn p256_csr() -> (String, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(vec![])
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    (csr.pem().unwrap(), key.public_key_raw().to_vec())
}

#[actix_web::test]
async fn creating_a_certificate_returns_the_three_pems_and_matching_facts() {
    let app = TestApp::spawn().await;
    let (key_id, _) = app.user("svc-mqtt", true, "nnn.acme", None).await;
    let r = app
        .post(
            CERTS,
            &app.admin,
            json!({"name": "Production MQTT Client", "api_key_id": key_id, "validity_hours": 8760}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let b = &r.body;
    for field in [
        "id",
        "name",
        "api_key_id",
        "serial",
        "fingerprint",
        "certificate_pem",
        "private_key_pem",
        "ca_certificate_pem",
        "status",
        "created_at",
        "expires_at",
    ] {
        assert!(!b[field].is_null(), "missing {field}");
    }
    assert_eq!(b["status"], "active");
    assert_eq!(b["api_key_id"], key_id.as_str());
    assert!(
        b["private_key_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    let der = der_of(b["certificate_pem"].as_str().unwrap());
    assert_eq!(b["fingerprint"], fleetca_ca::fingerprint(&der));
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(b["serial"], hex::encode(cert.raw_serial()));
    assert_eq!(cert.subject().to_string(), "O=nnn.acme, CN=svc-mqtt");
    let expires = chrono::DateTime::parse_from_rfc3339(b["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.timestamp(), cert.validity().not_after.timestamp());
    assert!(b["expires_at"].as_str().unwrap().ends_with('Z'));
    // A new installation issues from an intermediate under its root: the answer names the
    // root (what clients trust) and the intermediate (what they present after the
    // certificate), and the certificate chains through both.
    let root = der_of(b["ca_certificate_pem"].as_str().unwrap());
    let (_, root) = X509Certificate::from_der(&root).unwrap();
    let intermediate = der_of(b["chain_pem"].as_str().unwrap());
    let (_, intermediate) = X509Certificate::from_der(&intermediate).unwrap();
    cert.verify_signature(Some(intermediate.public_key())).unwrap();
    intermediate.verify_signature(Some(root.public_key())).unwrap();
    assert_eq!(root.subject(), root.issuer(), "ca_certificate_pem is the root");
    // /ca.pem is the trust bundle a broker loads: the root, then the intermediate.
    let ca = app.send("GET", "/ca.pem", None, None).await;
    assert_eq!(
        String::from_utf8_lossy(&ca.raw),
        format!(
            "{}{}",
            b["ca_certificate_pem"].as_str().unwrap(),
            b["chain_pem"].as_str().unwrap()
        )
    );

    // The detail has the certificate but never the key; the list neither.
    let id = b["id"].as_str().unwrap();
    let d = app.get(&format!("{CERTS}{id}/"), &app.admin).await;
    assert_eq!(d.body["certificate_pem"], b["certificate_pem"]);
    assert!(d.body.get("private_key_pem").is_none());
    let l = app.get(CERTS, &app.admin).await;
    assert!(!String::from_utf8_lossy(&l.raw).contains("PRIVATE KEY"));
}

#[actix_web::test]
async fn the_database_never_holds_the_private_key() {
    let app = TestApp::spawn().await;
    let (key_id, _) = app.user("svc-secret", true, "acme", None).await;
    let b = app.certificate(&key_id, "never stored").await;
    let key_body: String = b["private_key_pem"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let key_der = der_of(b["private_key_pem"].as_str().unwrap());
    let db = app.database_bytes();
    assert!(
        !db.windows(40)
            .any(|w| key_body.as_bytes().windows(40).next() == Some(w)),
        "PEM body found"
    );
    assert!(
        !db.windows(32).any(|w| w == &key_der[7..39]),
        "raw private scalar found"
    );
}

#[actix_web::test]
async fn a_csr_keeps_the_key_on_the_device() {
    let app = TestApp::spawn().await;
    let (key_id, _) = app.user("svc-csr", true, "acme", None).await;
    let (csr, public_key) = p256_csr();
    let r = app
        .post(
            CERTS,
            &app.admin,
            json!({"name": "csr", "api_key_id": key_id, "csr_pem": csr}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.get("private_key_pem").is_none());
    let der = der_of(r.body["certificate_pem"].as_str().unwrap());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        public_key.as_slice()
    );
    assert_eq!(
        cert.subject().to_string(),
        "O=acme, CN=svc-csr",
        "the subject comes from the API key, not the CSR"
    );
}

#[actix_web::test]
async fn csrs_with_the_keys_device_stacks_make_are_certified() {
    let app = TestApp::spawn().await;
    let (key_id, _) = app.user("svc-keys", true, "acme", None).await;
    // Made by openssl (see fixtures/README): RSA-2048 (what TPMs and many stacks make),
    // P-384 and Ed25519.
    let cases = [
        (include_str!("fixtures/rsa.csr"), "1.2.840.113549.1.1.1"),
        (include_str!("fixtures/p384.csr"), "1.2.840.10045.2.1"),
        (include_str!("fixtures/ed25519.csr"), "1.3.101.112"),
    ];
    for (i, (csr, key_oid)) in cases.into_iter().enumerate() {
        let r = app
            .post(
                CERTS,
                &app.admin,
                json!({"name": format!("key-{i}"), "api_key_id": key_id, "csr_pem": csr}),
            )
            .await;
        assert_eq!(r.status, 201, "{key_oid}: {}", r.body);
        assert!(r.body.get("private_key_pem").is_none());
        let der = der_of(r.body["certificate_pem"].as_str().unwrap());
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.public_key().algorithm.algorithm.to_id_string(), key_oid);
        let block = pem::parse(csr).unwrap();
        let (_, request) =
            x509_parser::certification_request::X509CertificationRequest::from_der(block.contents()).unwrap();
        assert_eq!(
            cert.public_key().raw,
            request.certification_request_info.subject_pki.raw,
            "the certificate names the CSR's key exactly"
        );
        // Signed by fleetca's issuing CA, whatever the subject's key.
        let ca = der_of(r.body["chain_pem"].as_str().unwrap());
        let (_, ca) = X509Certificate::from_der(&ca).unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
    }
}

#[actix_web::test]
async fn bad_certificate_requests_name_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let (key_id, _) = app.user("svc-bad", true, "acme", None).await;
    let (off_id, _) = app.user("svc-off", true, "acme", None).await;
    app.send(
        "DELETE",
        &format!("/api/v4/manage/users/{off_id}/"),
        Some(&app.admin),
        None,
    )
    .await;
    let (human_id, _) = app.user("human", false, "acme", Some("manager")).await;
    let (csr, _) = p256_csr();
    let mut tampered = der_of(&csr);
    let n = tampered.len();
    tampered[n - 5] ^= 0x55;
    let tampered = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", tampered));
    let weak_rsa = include_str!("fixtures/rsa1024.csr");
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "x", "api_key_id": key_id, "validity_hours": 8759}),
            "validity_hours",
        ),
        (
            json!({"name": "x", "api_key_id": key_id, "validity_hours": 87601}),
            "validity_hours",
        ),
        (
            json!({"name": "x", "api_key_id": key_id, "validity_hours": -1}),
            "validity_hours",
        ),
        (
            json!({"name": "x", "api_key_id": key_id, "validity_hours": "a year"}),
            "validity_hours",
        ),
        (json!({"name": "", "api_key_id": key_id}), "name"),
        (json!({"name": "n".repeat(300), "api_key_id": key_id}), "name"),
        (json!({"name": "x", "api_key_id": uuid::Uuid::new_v4()}), "api_key_id"),
        (json!({"name": "x", "api_key_id": "not-a-uuid"}), "api_key_id"),
        (json!({"name": "x", "api_key_id": off_id}), "api_key_id"),
        (json!({"name": "x", "api_key_id": human_id}), "api_key_id"),
        (
            json!({"name": "x", "api_key_id": key_id, "csr_pem": "garbage"}),
            "csr_pem",
        ),
        (
            json!({"name": "x", "api_key_id": key_id, "csr_pem": weak_rsa}),
            "csr_pem",
        ),
        (
            json!({"name": "x", "api_key_id": key_id, "csr_pem": tampered}),
            "csr_pem",
        ),
        (json!({"name": "x"}), "api_key_id"),
    ];
    for (body, field) in cases {
        let r = app.post(CERTS, &app.admin, body.clone()).await;
        assert_field_error(&r, field);
    }
    assert_eq!(app.get(CERTS, &app.admin).await.body["count"], 0);
}

#[actix_web::test]
async fn an_other_enterprises_api_key_is_not_in_a_managers_scope() {
    let app = TestApp::spawn().await;
    let (_, mgr) = app.user("acme-mgr", false, "acme", Some("manager")).await;
    let (globex_key, _) = app.user("globex-key", true, "globex", None).await;
    let (acme_key, _) = app.user("acme-key", true, "acme", None).await;
    assert_field_error(
        &app.post(CERTS, &mgr, json!({"name": "x", "api_key_id": globex_key}))
            .await,
        "api_key_id",
    );
    assert_eq!(
        app.post(CERTS, &mgr, json!({"name": "x", "api_key_id": acme_key}))
            .await
            .status,
        201
    );
    let g = app.certificate(&globex_key, "globex cert").await;
    assert_problem(
        &app.get(&format!("{CERTS}{}/", g["id"].as_str().unwrap()), &mgr).await,
        404,
    );
    assert_problem(
        &app.post(
            &format!("{CERTS}{}/revoke/", g["id"].as_str().unwrap()),
            &mgr,
            json!({}),
        )
        .await,
        404,
    );
    assert_eq!(app.get(CERTS, &mgr).await.body["count"], 1);
}

#[actix_web::test]
async fn an_api_key_has_at_most_ten_active_certificates_even_under_concurrency() {
    let app = TestApp::spawn().await;
    let (key_id, _) = app.user("svc-limit", true, "acme", None).await;
    let requests = (0..30).map(|i| {
        app.post(
            CERTS,
            &app.admin,
            json!({"name": format!("c{i}"), "api_key_id": key_id}),
        )
    });
    let results = join_all(requests).await;
    let created = results.iter().filter(|r| r.status == 201).count();
    let refused: Vec<_> = results.iter().filter(|r| r.status == 409).collect();
    assert_eq!(created, 10);
    assert_eq!(refused.len(), 20);
    assert!(
        refused[0].body["detail"]
            .as_str()
            .unwrap()
            .contains("10 active certificates")
    );
    // Revoking one makes room for exactly one more.
    let one = results.iter().find(|r| r.status == 201).unwrap();
    app.post(
        &format!("{CERTS}{}/revoke/", one.body["id"].as_str().unwrap()),
        &app.admin,
        json!({}),
    )
    .await;
    assert_eq!(
        app.post(CERTS, &app.admin, json!({"name": "again", "api_key_id": key_id}))
            .await
            .status,
        201
    );
    assert_problem(
        &app.post(CERTS, &app.admin, json!({"name": "over", "api_key_id": key_id}))
            .await,
        409,
    );
    let active = app
        .get(
            &format!("{CERTS}?api_key_id={key_id}&status=active&page_size=100"),
            &app.admin,
        )
        .await;
    assert_eq!(active.body["count"], 10);
}

/// The CRLs of the CA that issues (a new installation's intermediate, CA 2): its own and its
/// 16 shards, each certificate on the shard it names.
const ISSUING_CRLS: [&str; 17] = [
    "/crl/2.der",
    "/crl/2/0.der",
    "/crl/2/1.der",
    "/crl/2/2.der",
    "/crl/2/3.der",
    "/crl/2/4.der",
    "/crl/2/5.der",
    "/crl/2/6.der",
    "/crl/2/7.der",
    "/crl/2/8.der",
    "/crl/2/9.der",
    "/crl/2/10.der",
    "/crl/2/11.der",
    "/crl/2/12.der",
    "/crl/2/13.der",
    "/crl/2/14.der",
    "/crl/2/15.der",
];

/// The issuing CA's CRLs taken together: the highest CRL number (the shards share the CA's
/// numbers) and every entry (serial, reason code).
async fn crl(app: &TestApp) -> (u64, Vec<(String, Option<u8>)>) {
    let mut number = 0;
    let mut entries = Vec::new();
    for path in ISSUING_CRLS {
        let r = app.send("GET", path, None, None).await;
        assert_eq!(r.content_type, "application/pkix-crl", "{path}");
        let (_, crl) = CertificateRevocationList::from_der(&r.raw).unwrap();
        number = number.max(u64::try_from(crl.crl_number().unwrap()).unwrap());
        entries.extend(
            crl.iter_revoked_certificates()
                .map(|e| (hex::encode(e.raw_serial()), e.reason_code().map(|r| r.1.0))),
        );
    }
    (number, entries)
}

#[actix_web::test]
async fn revoking_lists_the_certificate_on_a_newer_crl_and_twice_changes_nothing() {
    let app = TestApp::spawn().await;
    let (key_id, _) = app.user("svc-rev", true, "acme", None).await;
    let cert = app.certificate(&key_id, "to revoke").await;
    let id = cert["id"].as_str().unwrap();
    let (before, entries) = crl(&app).await;
    assert!(entries.is_empty());
    let r = app
        .post(
            &format!("{CERTS}{id}/revoke/"),
            &app.admin,
            json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "revoked");
    assert_eq!(r.body["reason"], "keyCompromise");
    assert!(r.body["revoked_at"].is_string());
    let (after, entries) = crl(&app).await;
    assert!(after > before);
    assert_eq!(entries, vec![(cert["serial"].as_str().unwrap().to_owned(), Some(1))]);

    let again = app
        .post(
            &format!("{CERTS}{id}/revoke/"),
            &app.admin,
            json!({"reason": "superseded"}),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, r.body, "revoking again returns the same record");
    assert_eq!(crl(&app).await.0, after, "no new CRL for a no-op");

    let listed = app.get(&format!("{CERTS}?status=revoked"), &app.admin).await;
    assert_eq!(listed.body["count"], 1);
    assert_eq!(
        app.get(&format!("{CERTS}?status=active"), &app.admin).await.body["count"],
        0
    );
    assert_field_error(
        &app.post(&format!("{CERTS}{id}/revoke/"), &app.admin, json!({"reason": "bored"}))
            .await,
        "reason",
    );
    // An empty body revokes with `unspecified`.
    let other = app.certificate(&key_id, "empty body").await;
    let r = app
        .send(
            "POST",
            &format!("{CERTS}{}/revoke/", other["id"].as_str().unwrap()),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["reason"], "unspecified");
}

#[actix_web::test]
async fn a_bulk_revocation_is_all_or_nothing_in_scope_and_listed_on_one_crl() {
    let app = TestApp::spawn().await;
    let (_, mgr) = app.user("acme-bulk-mgr", false, "acme", Some("manager")).await;
    let (acme_key, acme_token) = app.user("svc-bulk", true, "acme", None).await;
    let (globex_key, _) = app.user("svc-globex", true, "globex", None).await;
    let mut acme = Vec::new();
    for i in 0..5 {
        acme.push(app.certificate(&acme_key, &format!("bulk {i}")).await);
    }
    let globex = app.certificate(&globex_key, "not yours").await;
    let id = |c: &serde_json::Value| c["id"].as_str().unwrap().to_owned();
    let bulk = format!("{CERTS}revoke/");
    let (crl_before, _) = crl(&app).await;

    // One id out of the manager's scope: nothing is revoked, and that id is named.
    let mixed: Vec<String> = acme.iter().take(3).map(id).chain([id(&globex)]).collect();
    let refused = app
        .post(&bulk, &mgr, json!({"ids": mixed, "reason": "keyCompromise"}))
        .await;
    assert_problem(&refused, 400);
    assert!(refused.body["errors"]["ids.3"].is_array(), "{}", refused.body);
    assert_eq!(
        app.get(&format!("{CERTS}?status=revoked"), &app.admin).await.body["count"],
        0,
        "all or nothing"
    );
    // Bad ids, duplicates, both targets or neither, an empty list: each named.
    for (body, field) in [
        (json!({"ids": ["nope"]}), "ids.0"),
        (json!({"ids": [id(&acme[0]), id(&acme[0])]}), "ids.1"),
        (json!({"ids": []}), "ids"),
        (json!({}), "ids"),
        (json!({"ids": [id(&acme[0])], "api_key_id": acme_key}), "ids"),
        (json!({"ids": [id(&acme[0])], "reason": "bored"}), "reason"),
    ] {
        assert_field_error(&app.post(&bulk, &mgr, body).await, field);
    }
    // An API key may not revoke in bulk.
    assert_problem(&app.post(&bulk, &acme_token, json!({"ids": [id(&acme[0])]})).await, 403);

    // Three in scope: revoked together, on one newer CRL.
    let three: Vec<String> = acme.iter().take(3).map(id).collect();
    let done = app
        .post(&bulk, &mgr, json!({"ids": three, "reason": "keyCompromise"}))
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["revoked"].as_array().unwrap().len(), 3);
    assert_eq!(done.body["already_revoked"], 0);
    let (crl_after, entries) = crl(&app).await;
    assert!(crl_after > crl_before);
    for c in acme.iter().take(3) {
        assert!(
            entries.contains(&(c["serial"].as_str().unwrap().to_owned(), Some(1))),
            "{c} on the CRL with keyCompromise"
        );
    }
    // By API key: the other two; the three revoked already are left as they were.
    let by_key = app
        .post(
            &bulk,
            &mgr,
            json!({"api_key_id": acme_key, "reason": "cessationOfOperation"}),
        )
        .await;
    assert_eq!(by_key.status, 200, "{}", by_key.body);
    assert_eq!(by_key.body["revoked"].as_array().unwrap().len(), 2, "{}", by_key.body);
    let again = app.post(&bulk, &mgr, json!({"ids": [id(&acme[0])]})).await;
    assert_eq!(
        (
            again.body["revoked"].as_array().unwrap().len(),
            again.body["already_revoked"].as_u64()
        ),
        (0, Some(1))
    );
    let first = app.get(&format!("{CERTS}{}/", id(&acme[0])), &app.admin).await;
    assert_eq!(
        first.body["reason"], "keyCompromise",
        "a second revocation changes nothing"
    );
    // Another enterprise's key is not the manager's to name.
    assert_field_error(
        &app.post(&bulk, &mgr, json!({"api_key_id": globex_key})).await,
        "api_key_id",
    );
    assert_eq!(
        app.get(&format!("{CERTS}{}/", id(&globex)), &app.admin).await.body["status"],
        "active"
    );
    // Each revocation is in the audit log.
    let audit = app
        .get(
            "/api/v4/manage/audit/?action=certificate.revoke&page_size=50",
            &app.admin,
        )
        .await;
    assert_eq!(audit.body["count"], 5, "{}", audit.body);
}

#[actix_web::test]
async fn concurrent_revocations_each_take_effect_once_and_share_crls() {
    let app = TestApp::spawn().await;
    let mut certs = Vec::new();
    for k in 0..3 {
        let (key_id, _) = app.user(&format!("svc-conc-{k}"), true, "acme", None).await;
        for i in 0..8 {
            certs.push(app.certificate(&key_id, &format!("c{i}")).await);
        }
    }
    let (before, _) = crl(&app).await;
    let same = certs[0]["id"].as_str().unwrap().to_owned();
    // Every certificate once, and the first ten more times, all at once.
    let paths: Vec<String> = certs
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .chain(std::iter::repeat_n(same.clone(), 10))
        .map(|id| format!("{CERTS}{id}/revoke/"))
        .collect();
    let answers = join_all(
        paths
            .iter()
            .map(|p| app.post(p, &app.admin, json!({"reason": "keyCompromise"}))),
    )
    .await;
    assert!(answers.iter().all(|r| r.status == 200 && r.body["status"] == "revoked"));
    let (after, entries) = crl(&app).await;
    assert_eq!(entries.len(), certs.len(), "each listed once");
    // The ten repeated revocations cost no CRL: at most one signature per certificate (its
    // shard's; revocations of one shard that arrive together share one).
    assert!(
        after > before && after - before <= certs.len() as u64,
        "revocations shared CRLs: {before} → {after}"
    );
    let audit = app
        .get(
            "/api/v4/manage/audit/?action=certificate.revoke&page_size=100",
            &app.admin,
        )
        .await;
    assert_eq!(
        audit.body["count"],
        certs.len(),
        "one audit record per revocation that took effect"
    );
}

#[actix_web::test]
async fn the_crl_supports_conditional_requests() {
    let app = TestApp::spawn().await;
    let r = app.send("GET", ISSUING_CRLS[0], None, None).await;
    let etag = r.headers.get("etag").unwrap().to_str().unwrap().to_owned();
    assert!(r.headers.get("last-modified").is_some());
    let r2 = app
        .client
        .get(app.url(ISSUING_CRLS[0]))
        .insert_header(("If-None-Match", etag.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status().as_u16(), 304);
    let pem = app.send("GET", "/crl/2.pem", None, None).await;
    assert!(String::from_utf8_lossy(&pem.raw).starts_with("-----BEGIN X509 CRL-----"));
    // The root's CRL (it lists revoked intermediates) is at /crl.der; a CA that does not
    // exist has none.
    let root = app.send("GET", "/crl.der", None, None).await;
    assert_eq!(root.status, 200);
    assert_eq!(app.send("GET", "/crl/9.der", None, None).await.status, 404);
    assert_eq!(app.send("GET", "/crl/x.der", None, None).await.status, 404);
    // A shard, DER and PEM, conditional too; one that does not exist has none.
    let shard = app.send("GET", "/crl/2/15.der", None, None).await;
    assert_eq!(shard.content_type, "application/pkix-crl");
    let etag = shard.headers.get("etag").unwrap().to_str().unwrap().to_owned();
    let again = app
        .client
        .get(app.url("/crl/2/15.der"))
        .insert_header(("If-None-Match", etag))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    let pem = app.send("GET", "/crl/2/15.pem", None, None).await;
    assert!(String::from_utf8_lossy(&pem.raw).starts_with("-----BEGIN X509 CRL-----"));
    for missing in ["/crl/2/16.der", "/crl/1/0.der", "/crl/2/x.der", "/crl/9/0.pem"] {
        assert_eq!(app.send("GET", missing, None, None).await.status, 404, "{missing}");
    }
}

#[actix_web::test]
async fn deactivating_an_api_key_revokes_its_active_certificates() {
    let app = TestApp::spawn().await;
    let (key_id, _) = app.user("svc-gone", true, "acme", None).await;
    let a = app.certificate(&key_id, "a").await;
    let b = app.certificate(&key_id, "b").await;
    let r = app
        .send(
            "PATCH",
            &format!("/api/v4/manage/users/{key_id}/"),
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(r.status, 200);
    let (_, entries) = crl(&app).await;
    let serials: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert!(serials.contains(&a["serial"].as_str().unwrap()) && serials.contains(&b["serial"].as_str().unwrap()));
    let d = app
        .get(&format!("{CERTS}{}/", a["id"].as_str().unwrap()), &app.admin)
        .await;
    assert_eq!(d.body["status"], "revoked");
    assert_eq!(d.body["reason"], "cessationOfOperation");
}

#[actix_web::test]
async fn a_service_account_lists_and_reads_only_its_own_certificates() {
    let app = TestApp::spawn().await;
    let (mine, token) = app.user("svc-own", true, "acme", None).await;
    let (theirs, _) = app.user("svc-theirs", true, "acme", None).await;
    let m = app.certificate(&mine, "mine").await;
    let t = app.certificate(&theirs, "theirs").await;
    let list = app.get(CERTS, &token).await;
    assert_eq!(list.body["count"], 1);
    assert_eq!(list.body["results"][0]["id"], m["id"]);
    assert_eq!(
        app.get(&format!("{CERTS}{}/", m["id"].as_str().unwrap()), &token)
            .await
            .status,
        200
    );
    assert_problem(
        &app.get(&format!("{CERTS}{}/", t["id"].as_str().unwrap()), &token).await,
        404,
    );
    assert_problem(
        &app.post(CERTS, &token, json!({"name": "self", "api_key_id": mine}))
            .await,
        403,
    );
    assert_problem(
        &app.post(
            &format!("{CERTS}{}/revoke/", m["id"].as_str().unwrap()),
            &token,
            json!({}),
        )
        .await,
        403,
    );
}

#[actix_web::test]
async fn only_an_admin_issues_server_certificates() {
    let app = TestApp::spawn().await;
    let (_, mgr) = app.user("mgr", false, "acme", Some("manager")).await;
    let body = json!({"dns_names": ["localhost"], "ip_addresses": ["127.0.0.1"]});
    assert_problem(
        &app.post("/api/v4/manage/server-certificates/", &mgr, body.clone())
            .await,
        403,
    );
    let r = app.post("/api/v4/manage/server-certificates/", &app.admin, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["private_key_pem"].as_str().unwrap().contains("EC PRIVATE KEY"));
    let der = der_of(r.body["certificate_pem"].as_str().unwrap());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(cert.extended_key_usage().unwrap().unwrap().value.server_auth);
    assert_field_error(
        &app.post("/api/v4/manage/server-certificates/", &app.admin, json!({}))
            .await,
        "dns_names",
    );
    assert_field_error(
        &app.post(
            "/api/v4/manage/server-certificates/",
            &app.admin,
            json!({"dns_names": ["bad name!"]}),
        )
        .await,
        "dns_names",
    );
    // Server certificates are not MQTT client certificates.
    assert_eq!(app.get(CERTS, &app.admin).await.body["count"], 0);
}
