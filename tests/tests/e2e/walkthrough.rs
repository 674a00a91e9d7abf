//! The README's curl walkthrough, run line for line with `sh -c` against the real binary.
//!
//! The command lines below are the constants this test runs, verbatim (the test only
//! appends `-w '\n%{http_code}'` to read the status). The README mirrors them; change both
//! together. The test runs them in the directory that holds `data/`, with `BASE`, `ADMIN`,
//! `KEY_ID`, `KEY_TOKEN` and `CERT_ID` set as the comments say.
//!
//! ```sh
//! BASE=http://127.0.0.1:8080
//! ADMIN=$(cat data/admin-token)
//!
//! # 1. An API key (service account). The token is in this response only: keep it.
//! curl -s -X POST "$BASE/api/v4/manage/users/" \
//!   -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
//!   -d '{"username": "svc-mqtt-prod", "is_service_account": true, "enterprise": "nnn.acme"}'
//! # KEY_ID and KEY_TOKEN are its "id" and "token".
//!
//! # 2. List the API keys; the new key reads its own record with its own token.
//! curl -s "$BASE/api/v4/manage/users/?is_service_account=true" -H "Authorization: Bearer $ADMIN"
//! curl -s "$BASE/api/v4/manage/users/$KEY_ID/" -H "Authorization: Bearer $KEY_TOKEN"
//!
//! # 3. Rotate its token: the response holds the new one; the old one stops working at once.
//! curl -s -X POST "$BASE/api/v4/manage/users/$KEY_ID/rotate-token/" -H "Authorization: Bearer $ADMIN"
//!
//! # 4. An MQTT client certificate: certificate_pem followed by chain_pem, private_key_pem
//! #    (shown only here) and ca_certificate_pem go to client.crt, client.key (mode 0600) and
//! #    ca.crt; CERT_ID is its "id".
//! curl -s -X POST "$BASE/api/v4/manage/mqtt-certificates/" \
//!   -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
//!   -d "{\"name\": \"Production MQTT Client\", \"api_key_id\": \"$KEY_ID\", \"validity_hours\": 8760}"
//!
//! # 5. Revoke it: returns once a CRL listing it is signed, written and the broker reloaded.
//! curl -s -X POST "$BASE/api/v4/manage/mqtt-certificates/$CERT_ID/revoke/" \
//!   -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d '{"reason": "keyCompromise"}'
//!
//! # 6. The CRL lists it (crl.pem holds every CA's CRL).
//! curl -s "$BASE/crl.pem" -o crl.pem
//! openssl storeutl -noout -text -crls crl.pem
//! ```

use std::time::Instant;

use fleetca_e2e::http::STATUS_SUFFIX;
use fleetca_e2e::{Fleetca, Response, Scratch, openssl_in, sh, tool};
use serde_json::Value;

/// Where the walkthrough reads the admin token (run in the directory holding `data/`).
const READ_ADMIN_TOKEN: &str = "cat data/admin-token";

/// 1. Create an API key.
const CREATE_API_KEY: &str = r#"curl -s -X POST "$BASE/api/v4/manage/users/" \
  -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"username": "svc-mqtt-prod", "is_service_account": true, "enterprise": "nnn.acme"}'"#;

/// 2a. List the API keys.
const LIST_API_KEYS: &str =
    r#"curl -s "$BASE/api/v4/manage/users/?is_service_account=true" -H "Authorization: Bearer $ADMIN""#;

/// 2b. The key reads its own record with its own token.
const GET_OWN_RECORD: &str = r#"curl -s "$BASE/api/v4/manage/users/$KEY_ID/" -H "Authorization: Bearer $KEY_TOKEN""#;

/// 3. Rotate the key's token.
const ROTATE_TOKEN: &str =
    r#"curl -s -X POST "$BASE/api/v4/manage/users/$KEY_ID/rotate-token/" -H "Authorization: Bearer $ADMIN""#;

/// 4. Create an MQTT client certificate for the key.
const CREATE_CERTIFICATE: &str = r#"curl -s -X POST "$BASE/api/v4/manage/mqtt-certificates/" \
  -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d "{\"name\": \"Production MQTT Client\", \"api_key_id\": \"$KEY_ID\", \"validity_hours\": 8760}""#;

/// 5. Revoke it.
const REVOKE_CERTIFICATE: &str = r#"curl -s -X POST "$BASE/api/v4/manage/mqtt-certificates/$CERT_ID/revoke/" \
  -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d '{"reason": "keyCompromise"}'"#;

/// 6a. Download the CRL.
const DOWNLOAD_CRL: &str = r#"curl -s "$BASE/crl.pem" -o crl.pem"#;

/// 6b. Show it.
const SHOW_CRL: &str = "openssl storeutl -noout -text -crls crl.pem";

/// Runs one curl line of the walkthrough and returns its status and body.
fn step(dir: &Scratch, line: &str, env: &[(&str, String)]) -> Response {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = sh(&format!("{line} {STATUS_SUFFIX}"), dir.path(), &env);
    Response::from_curl(line, &out)
}

/// Sets a shell variable for the following steps.
fn set(env: &mut Vec<(&'static str, String)>, key: &'static str, value: &str) {
    env.retain(|(k, _)| *k != key);
    env.push((key, value.to_owned()));
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

#[test]
fn the_readme_walkthrough_works_with_curl() {
    let started = Instant::now();
    tool("curl");
    tool("openssl");
    let dir = Scratch::new("walkthrough");
    let server = Fleetca::start(&dir.join("data"));

    let admin = sh(READ_ADMIN_TOKEN, dir.path(), &[])
        .expect_success(READ_ADMIN_TOKEN)
        .trim()
        .to_owned();
    assert!(!admin.is_empty(), "data/admin-token is empty");
    let mut env = Vec::new();
    set(&mut env, "BASE", &server.base);
    set(&mut env, "ADMIN", &admin);

    // 1. An API key.
    let key = step(&dir, CREATE_API_KEY, &env).expect_json(201, "creating the API key");
    let key_id = text(&key, "id").to_owned();
    let first_token = text(&key, "token").to_owned();
    assert!(first_token.len() >= 32, "the token looks too short: {first_token:?}");
    assert_eq!(key["username"], "svc-mqtt-prod");
    assert_eq!(key["is_service_account"], true);
    assert_eq!(key["enterprise"], "nnn.acme");
    assert_eq!(key["role"], "service");
    assert_eq!(key["is_active"], true);
    set(&mut env, "KEY_ID", &key_id);
    set(&mut env, "KEY_TOKEN", &first_token);

    // 2. The list shows it, without any token; the key reads its own record.
    let list = step(&dir, LIST_API_KEYS, &env).expect_json(200, "listing API keys");
    let results = list["results"].as_array().expect("results is an array");
    assert!(
        results.iter().any(|u| u["id"] == key_id.as_str()),
        "the new key is not listed: {list}"
    );
    assert!(results.iter().all(|u| u["is_service_account"] == true), "{list}");
    assert!(
        results.iter().all(|u| u.get("token").is_none()),
        "a listed user shows a token: {list}"
    );
    let own = step(&dir, GET_OWN_RECORD, &env).expect_json(200, "the key reading its own record");
    assert_eq!(own["id"], key_id.as_str());
    assert_eq!(own["username"], "svc-mqtt-prod");
    assert!(own.get("token").is_none(), "the record shows a token: {own}");

    // 3. Rotating the token: the old one is refused at once, the new one works.
    let rotated = step(&dir, ROTATE_TOKEN, &env).expect_json(200, "rotating the token");
    let key_token = text(&rotated, "token").to_owned();
    assert_ne!(key_token, first_token);
    let old = step(&dir, GET_OWN_RECORD, &env);
    assert_eq!(old.status, 401, "the old token still works: {}", old.body);
    assert_eq!(old.json()["status"], 401, "not a problem+json body: {}", old.body);
    set(&mut env, "KEY_TOKEN", &key_token);
    step(&dir, GET_OWN_RECORD, &env).expect_json(200, "the key reading its record with the new token");

    // 4. A certificate: the three PEMs saved as the README does.
    let cert = step(&dir, CREATE_CERTIFICATE, &env).expect_json(201, "creating the certificate");
    let cert_id = text(&cert, "id").to_owned();
    assert_eq!(cert["name"], "Production MQTT Client");
    assert_eq!(cert["api_key_id"], key_id.as_str());
    assert_eq!(cert["status"], "active");
    for (field, file, header, private) in [
        ("certificate_pem", "client.crt", "-----BEGIN CERTIFICATE-----", false),
        ("private_key_pem", "client.key", "-----BEGIN EC PRIVATE KEY-----", true),
        ("ca_certificate_pem", "ca.crt", "-----BEGIN CERTIFICATE-----", false),
    ] {
        let pem = text(&cert, field);
        assert!(pem.starts_with(header), "{field} does not start with {header}: {pem}");
        let pem = if file == "client.crt" {
            format!("{pem}{}", text(&cert, "chain_pem"))
        } else {
            pem.to_owned()
        };
        dir.write(file, &pem, private);
    }
    let verified = openssl_in(
        dir.path(),
        ["verify", "-CAfile", "ca.crt", "-untrusted", "client.crt", "client.crt"],
    );
    assert!(verified.stdout.contains("client.crt: OK"), "{}", verified.combined());
    set(&mut env, "CERT_ID", &cert_id);

    // 5. Revoke it.
    let revoked = step(&dir, REVOKE_CERTIFICATE, &env).expect_json(200, "revoking the certificate");
    assert_eq!(revoked["id"], cert_id.as_str());
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["reason"], "keyCompromise");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");

    // 6. The CRL lists it.
    let download = step(&dir, DOWNLOAD_CRL, &env);
    assert_eq!(download.status, 200, "downloading the CRL");
    assert!(dir.read("crl.pem").starts_with("-----BEGIN X509 CRL-----"));
    let crl = sh(SHOW_CRL, dir.path(), &[]);
    let crl = crl.expect_success(SHOW_CRL);
    let serial = text(&cert, "serial").to_uppercase();
    assert!(
        crl.contains(&format!("Serial Number: {serial}")),
        "the CRL does not list {serial}:\n{crl}"
    );
    assert!(crl.contains("Key Compromise"), "{crl}");

    println!("the README walkthrough took {} ms", started.elapsed().as_millis());
}
