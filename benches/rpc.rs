//! An RPC against its floor: the target is `GetSecret` through the service within 1.5x of the
//! direct Kubernetes call it makes (both against the in-process embedded engine, so the engine's
//! own cost is in both and the ratio isolates the service's overhead).

use criterion::{Criterion, criterion_group, criterion_main};
use flytesecret::kubeapi::Engine;
use flytesecret::proto::flyteidl2::secret::*;
use flytesecret::service::{KubeBackend, SecretService, Settings};
use k8s_openapi::api::core::v1::Secret;
use std::hint::black_box;

fn rpc(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // kube::Client spawns its buffer task on creation: create clients inside the runtime.
    let _runtime = rt.enter();
    let engine = Engine::ephemeral();
    engine.ensure_namespace("flyte");
    let svc = SecretService::new(
        KubeBackend::new(engine.kube_client("flyte"), 0.0, 1, None),
        Settings::default(),
        None,
    );
    let id = Some(SecretIdentifier {
        name: "bench".into(),
        domain: "d".into(),
        ..Default::default()
    });
    let spec = Some(SecretSpec {
        value: Some(secret_spec::Value::StringValue("v".into())),
        r#type: 0,
    });
    rt.block_on(svc.create(CreateSecretRequest {
        id: id.clone(),
        secret_spec: spec,
    }))
    .unwrap();
    let object = flytesecret::naming::SecretId::new("flyte", "d", "", "bench")
        .encode()
        .object_name()
        .to_string();
    let api: kube::Api<Secret> = kube::Api::namespaced(engine.kube_client("flyte"), "flyte");

    let mut g = c.benchmark_group("get");
    g.bench_function("direct_kubernetes_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(api.get(&object).await.unwrap()) })
    });
    g.bench_function("service_get_secret", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                svc.get(GetSecretRequest {
                    id: id.clone(),
                    include_system_secrets: false,
                })
                .await
                .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, rpc);
criterion_main!(benches);
