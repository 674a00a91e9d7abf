//! Micro-benchmarks of the CA core: `cargo bench -p fleetca-ca`.
// A benchmark stops at the first failure, so unwrapping is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use chrono::{Duration, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fleetca_ca::crl::{CrlRequest, Reason, RevokedEntry};
use fleetca_ca::{Authority, CaSubject, ClientProfile, generate_p256};

fn authority() -> Authority {
    let subject = CaSubject {
        common_name: "bench CA".into(),
        organization: None,
    };
    Authority::create(&subject, Utc::now(), Duration::days(3650)).unwrap()
}

fn keygen_and_sign(c: &mut Criterion) {
    let ca = authority();
    let profile = ClientProfile {
        common_name: "svc",
        organization: "bench",
        validity: Duration::hours(8760),
        crl_url: "http://h/crl.der",
    };
    c.bench_function("keygen (P-256, SEC1 PEM)", |b| b.iter(|| generate_p256().unwrap()));
    let key = generate_p256().unwrap();
    c.bench_function("sign a client certificate", |b| {
        b.iter(|| ca.issue_client(&profile, &key.public_key, Utc::now()).unwrap())
    });
    c.bench_function("keygen + sign + PEM", |b| {
        b.iter(|| {
            let key = generate_p256().unwrap();
            ca.issue_client(&profile, &key.public_key, Utc::now()).unwrap()
        })
    });
}

fn crl(c: &mut Criterion) {
    let ca = authority();
    let now = Utc::now();
    let mut group = c.benchmark_group("sign a CRL");
    group.sample_size(10);
    for n in [1_000u32, 10_000, 100_000] {
        let entries: Vec<RevokedEntry> = (0..n)
            .map(|i| RevokedEntry {
                serial: [&[0x40u8; 12][..], &i.to_be_bytes()].concat(),
                revoked_at: now,
                reason: Reason::KeyCompromise,
            })
            .collect();
        let request = CrlRequest {
            number: 7,
            this_update: now,
            next_update: now + Duration::days(7),
            url: "http://h/crl.der",
            scoped: true,
        };
        group.bench_with_input(BenchmarkId::from_parameter(n), &entries, |b, e| {
            b.iter(|| ca.sign_crl(&request, e).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, keygen_and_sign, crl);
criterion_main!(benches);
