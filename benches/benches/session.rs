//! Criterion micro-benchmarks of the identity cookie (cookie store): decode (find the cookie
//! in the `Cookie` header, AES-256-GCM open, binary decode), which the layer does on every
//! signed-in request, and encode (binary encode, seal), which it does at sign-in, after a
//! refresh, and when `last_seen` is written back (at most once a minute).
//!
//! `cargo bench -p doximity-benches --bench session`

#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use doximity_benches::{request_headers, session};
use tower_doximity::__bench::{IdentityCookie, Record};
use tower_doximity::Key;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn identity_cookie(c: &mut Criterion) {
    // https redirect URI: the `__Host-` names a deployment uses.
    let codec = IdentityCookie::new(Key::generate(), true);
    let max_age = Duration::from_secs(12 * 3600);
    let mut group = c.benchmark_group("identity_cookie");
    for (label, with_profile) in [("openid", false), ("profile", true)] {
        let record = session(with_profile, now());
        let sealed = codec.encode(&record, max_age);
        let headers = request_headers(&sealed, "__Host-doximity-tokens");
        // Sanity: the decoder reads what the encoder wrote, from a full Cookie header.
        assert_eq!(
            codec.decode(&headers).as_ref().map(|r| r.sub().to_owned()),
            Some(record.sub().to_owned()),
        );
        let value_len = sealed
            .to_str()
            .ok()
            .and_then(|s| s.split(';').next())
            .and_then(|p| p.split_once('='))
            .map_or(0, |(_, v)| v.len());
        println!(
            "identity_cookie/{label}: plaintext {} bytes, sealed value {value_len} bytes",
            codec.open(&headers).map_or(0, |j| j.len())
        );
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("decode/{label}"), |b| {
            b.iter(|| codec.decode(black_box(&headers)));
        });
        // Decode's two halves: find + AES-GCM open, then the binary decode.
        let plaintext = codec.open(&headers).expect("the cookie opens");
        group.bench_function(format!("decode_open/{label}"), |b| {
            b.iter(|| codec.open(black_box(&headers)));
        });
        group.bench_function(format!("decode_parse/{label}"), |b| {
            b.iter(|| Record::from_plaintext(black_box(&plaintext)));
        });
        group.bench_function(format!("encode/{label}"), |b| {
            b.iter(|| codec.encode(black_box(&record), max_age));
        });
    }
    group.finish();
}

criterion_group!(benches, identity_cookie);
criterion_main!(benches);
