//! `/api/v4/manage/ca/…`: an admin adds intermediates (signed by fleetca's root, or a CSR for
//! the operator's root), imports the certificate the operator's root signed, and activates
//! one — each audited, each refused with a problem that says what to do when it cannot be
//! done yet, and never by a manager.

use serde_json::json;

use crate::helpers::{TestApp, assert_field_error, assert_problem};

const ADD: &str = "/api/v4/manage/ca/intermediates/";

#[actix_web::test]
async fn an_admin_adds_an_intermediate_signed_by_fleetcas_root_which_waits_for_a_restart_before_it_issues() {
    let app = TestApp::spawn().await;
    let (_, manager) = app.user("mgr", false, "acme", Some("manager")).await;
    let r = app
        .post(
            ADD,
            &manager,
            json!({"signed_by": "fleetca", "common_name": "Acme issuing CA 2"}),
        )
        .await;
    assert_problem(&r, 403);

    let r = app
        .post(
            ADD,
            &app.admin,
            json!({"signed_by": "fleetca", "common_name": "Acme issuing CA 2"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["id"], 3, "a new installation has CAs 1 and 2");
    assert_eq!(r.body["state"], "standby");
    assert!(r.body["csr_pem"].is_null());
    assert!(r.body["next"].as_str().unwrap().contains("restart"));

    // Listed (as `fleetca ca list` would show it) once the instances restart; activation
    // before its CRL was ever published is refused, saying what to do.
    let r = app.post("/api/v4/manage/ca/3/activate/", &app.admin, json!({})).await;
    let problem = assert_problem(&r, 409);
    assert!(
        problem["detail"].as_str().unwrap().contains("restart every instance"),
        "{problem}"
    );
    // The root (CA 1) is not an intermediate; CA 99 does not exist; "x" names nothing.
    let r = app.post("/api/v4/manage/ca/1/activate/", &app.admin, json!({})).await;
    assert_problem(&r, 409);
    let r = app.post("/api/v4/manage/ca/99/activate/", &app.admin, json!({})).await;
    assert_problem(&r, 404);
    let r = app.post("/api/v4/manage/ca/x/activate/", &app.admin, json!({})).await;
    assert_problem(&r, 404);

    let audit = app
        .get("/api/v4/manage/audit/?action=ca.intermediate_request", &app.admin)
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let records = audit.body["results"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{}", audit.body);
    assert_eq!(records[0]["actor"], "admin");
    assert_eq!(records[0]["target_id"], "3", "the record names the CA it made");
    assert_eq!(records[0]["details"]["common_name"], "Acme issuing CA 2");
}

#[actix_web::test]
async fn the_operators_root_signs_a_csr_and_the_certificate_is_checked_before_it_is_taken() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            ADD,
            &app.admin,
            json!({"signed_by": "operator", "common_name": "Acme issuing CA 1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["state"], "pending");
    let id = r.body["id"].as_i64().unwrap();
    let csr = r.body["csr_pem"].as_str().unwrap().to_owned();

    // The operator's root (made here; fleetca never sees its key) certifies the CSR's key.
    let now = chrono::Utc::now();
    let subject = |cn: &str| fleetca_ca::CaSubject {
        common_name: cn.into(),
        organization: None,
    };
    let root = fleetca_ca::Authority::create_root(&subject("Acme Root"), now, chrono::Duration::days(3650)).unwrap();
    let public = fleetca_ca::csr::parse_csr_pem(&csr).unwrap();
    let profile = fleetca_ca::IntermediateProfile {
        subject: &subject("Acme issuing CA 1"),
        validity: chrono::Duration::days(1825),
        crl_url: "https://pki.acme.example/root.crl",
    };
    let certified = root.certify_intermediate(&profile, &public, now).unwrap();

    // Not a certificate; one for another key (the root's own): refused, naming the field.
    let import = format!("/api/v4/manage/ca/{id}/import/");
    let r = app
        .post(
            &import,
            &app.admin,
            json!({"certificate_pem": "nonsense", "root_pem": root.certificate_pem()}),
        )
        .await;
    assert_field_error(&r, "certificate_pem");
    let r = app
        .post(
            &import,
            &app.admin,
            json!({"certificate_pem": root.certificate_pem(), "root_pem": root.certificate_pem()}),
        )
        .await;
    assert_field_error(&r, "certificate_pem");
    let r = app
        .post(
            &import,
            &app.admin,
            json!({"certificate_pem": certified.pem, "root_pem": root.certificate_pem(), "extra": 1}),
        )
        .await;
    assert_problem(&r, 400);

    let r = app
        .post(
            &import,
            &app.admin,
            json!({"certificate_pem": certified.pem, "root_pem": root.certificate_pem()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["new_root"], true);
    assert!(r.body["subject"].as_str().unwrap().contains("Acme issuing CA 1"));
    // It stands by now: a second import is refused.
    let r = app
        .post(
            &import,
            &app.admin,
            json!({"certificate_pem": certified.pem, "root_pem": root.certificate_pem()}),
        )
        .await;
    assert_problem(&r, 409);
    let audit = app
        .get("/api/v4/manage/audit/?action=ca.intermediate_import", &app.admin)
        .await;
    assert_eq!(audit.body["results"].as_array().unwrap().len(), 1, "{}", audit.body);
}

#[actix_web::test]
async fn bad_requests_to_add_a_ca_are_refused_and_a_loop_cannot_fill_the_database() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"signed_by": "fleetca", "common_name": ""}), "common_name"),
        (
            json!({"signed_by": "fleetca", "common_name": "x".repeat(65)}),
            "common_name",
        ),
        (
            json!({"signed_by": "fleetca", "token_key": "no spaces allowed"}),
            "token_key",
        ),
    ] {
        let r = app.post(ADD, &app.admin, body).await;
        assert_field_error(&r, field);
    }
    // A good label, but no token is configured: that is what to fix.
    let r = app
        .post(
            ADD,
            &app.admin,
            json!({"signed_by": "fleetca", "token_key": "issuing-2"}),
        )
        .await;
    let problem = assert_problem(&r, 409);
    assert!(problem["detail"].as_str().unwrap().contains("[pkcs11]"), "{problem}");
    let r = app.post(ADD, &app.admin, json!({"signed_by": "someone"})).await;
    assert_problem(&r, 400);
    let r = app.post(ADD, &app.admin, json!({})).await;
    assert_problem(&r, 400);
    for _ in 0..8 {
        let r = app.post(ADD, &app.admin, json!({"signed_by": "operator"})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = app.post(ADD, &app.admin, json!({"signed_by": "fleetca"})).await;
    let problem = assert_problem(&r, 409);
    assert!(
        problem["detail"].as_str().unwrap().contains("already wait"),
        "{problem}"
    );
}

/// An admin revokes an intermediate that stands by: its root's CRL lists it at once, it
/// leaves the trust bundle, and the revocation is audited with the CA's id. The issuing CA,
/// a root, a CA that is revoked already or does not exist, and a reason RFC 5280 does not
/// name are refused, each saying why; a manager may not.
#[actix_web::test]
async fn an_admin_revokes_a_standby_intermediate_and_its_root_lists_it_at_once() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            ADD,
            &app.admin,
            json!({"signed_by": "fleetca", "common_name": "Acme issuing CA 2"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (_, manager) = app.user("mgr", false, "acme", Some("manager")).await;
    let revoke = "/api/v4/manage/ca/3/revoke/";
    assert_problem(
        &app.post(revoke, &manager, json!({"reason": "keyCompromise"})).await,
        403,
    );
    assert_field_error(
        &app.post(revoke, &app.admin, json!({"reason": "stolen"})).await,
        "reason",
    );
    assert_problem(&app.post(revoke, &app.admin, json!({})).await, 400);
    for (id, says) in [(1, "rolled over"), (2, "issues every new certificate")] {
        let r = app
            .post(
                &format!("/api/v4/manage/ca/{id}/revoke/"),
                &app.admin,
                json!({"reason": "keyCompromise"}),
            )
            .await;
        let problem = assert_problem(&r, 409);
        assert!(problem["detail"].as_str().unwrap().contains(says), "{problem}");
    }
    assert_problem(
        &app.post(
            "/api/v4/manage/ca/99/revoke/",
            &app.admin,
            json!({"reason": "superseded"}),
        )
        .await,
        404,
    );

    let r = app.post(revoke, &app.admin, json!({"reason": "keyCompromise"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["certificates_revoked"], 0, "it signed nothing");
    assert_eq!(r.body["listed_by_root"], true);
    let serial = r.body["serial"].as_str().unwrap().to_owned();
    let again = app.post(revoke, &app.admin, json!({"reason": "keyCompromise"})).await;
    assert!(
        assert_problem(&again, 409)["detail"]
            .as_str()
            .unwrap()
            .contains("revoked already"),
        "{}",
        again.body
    );

    // The root's CRL (CA 1) lists it, as a CA whose key is compromised (cACompromise).
    let crl = app.send("GET", "/crl.der", None, None).await;
    assert_eq!(crl.status, 200);
    let (_, parsed) = x509_parser::parse_x509_crl(&crl.raw).unwrap();
    let listed: Vec<(String, Option<String>)> = parsed
        .iter_revoked_certificates()
        .map(|e| {
            let reason = e.reason_code().map(|(_, r)| r.to_string());
            (hex::encode(e.raw_serial()), reason)
        })
        .collect();
    assert!(
        listed
            .iter()
            .any(|(s, r)| *s == serial && r.as_deref() == Some("CACompromise")),
        "{listed:?} lacks {serial}"
    );

    let audit = app.get("/api/v4/manage/audit/?action=ca.revoke", &app.admin).await;
    let records = audit.body["results"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{}", audit.body);
    assert_eq!(records[0]["target_id"], "3");
    assert_eq!(records[0]["details"]["serial"], serial);
    assert_eq!(records[0]["details"]["reason"], "keyCompromise");
}
