//! Naming throughput against its floor: the target is encode + object name within 1.25x of a
//! bare MD5 over the same bytes.

use criterion::{Criterion, criterion_group, criterion_main};
use flytesecret::naming::{self, SecretId};
use md5::{Digest as _, Md5};
use std::hint::black_box;

fn naming(c: &mut Criterion) {
    let id = SecretId::new("flyte", "development", "flytesnacks", "my-secret");
    let encoded = id.encode().into_string();
    let mut g = c.benchmark_group("naming");
    g.bench_function("raw_md5", |b| {
        b.iter(|| Md5::digest(black_box(encoded.as_bytes())))
    });
    g.bench_function("encode_and_object_name", |b| {
        b.iter(|| black_box(black_box(id).encode().object_name()))
    });
    g.bench_function("object_name", |b| {
        b.iter(|| naming::object_name(black_box(&encoded)))
    });
    g.bench_function("decode", |b| {
        b.iter(|| naming::decode(black_box(&encoded)).is_ok())
    });
    g.bench_function("image_pull_name", |b| {
        b.iter(|| {
            naming::image_pull_name(
                "flyte",
                "development",
                "flytesnacks",
                black_box("my-secret"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, naming);
criterion_main!(benches);
