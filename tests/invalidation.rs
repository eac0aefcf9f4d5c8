//! Webhook cache invalidation against a local HTTP listener: when it fires, what it sends, and
//! that a failing webhook never fails the RPC (docs/go-service.md §6).

use bytes::Bytes;
use flytesecret::invalidation::Invalidator;
use flytesecret::kubeapi::Engine;
use flytesecret::proto::flyteidl2::secret::*;
use flytesecret::service::{Code, KubeBackend, SecretService, Settings};
use http_body_util::{BodyExt, Full};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, PartialEq)]
struct Seen {
    method: String,
    path: String,
    content_type: String,
    body: String,
}

/// A webhook stand-in answering every request with `status`, recording what it saw.
async fn webhook(status: u16) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let record = record.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            record.lock().unwrap().push(Seen {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                content_type: parts
                                    .headers
                                    .get("content-type")
                                    .map(|v| v.to_str().unwrap().to_owned())
                                    .unwrap_or_default(),
                                body: String::from_utf8(body.to_vec()).unwrap(),
                            });
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/"), seen)
}

fn service(webhook_url: &str) -> SecretService {
    let engine = Engine::ephemeral();
    engine.ensure_namespace("flyte");
    let kube = KubeBackend::new(engine.kube_client("flyte"), 0.0, 1, None);
    SecretService::new(kube, Settings::default(), Invalidator::new(webhook_url))
}

fn id(name: &str, domain: &str, project: &str) -> Option<SecretIdentifier> {
    Some(SecretIdentifier {
        name: name.into(),
        domain: domain.into(),
        project: project.into(),
        organization: "ignored".into(),
    })
}

fn spec() -> Option<SecretSpec> {
    Some(SecretSpec {
        value: Some(secret_spec::Value::StringValue("v".into())),
        r#type: 0,
    })
}

#[tokio::test]
async fn fires_after_successful_writes_and_every_scoped_delete_only() {
    let (url, seen) = webhook(200).await;
    let svc = service(&url);
    let count = || seen.lock().unwrap().len();

    svc.create(CreateSecretRequest {
        id: id("k", "development", "flytesnacks"),
        secret_spec: spec(),
    })
    .await
    .unwrap();
    assert_eq!(count(), 1);
    let first = seen.lock().unwrap()[0].clone();
    assert_eq!(
        first,
        Seen {
            method: "POST".into(),
            path: "/invalidate-secret".into(),
            content_type: "application/json".into(),
            body: r#"{"org":"flyte","domain":"development","project":"flytesnacks","name":"k"}"#
                .into(),
        }
    );

    // A failed create (already exists), Get, List and scope/value rejections: no invalidation.
    assert!(
        svc.create(CreateSecretRequest {
            id: id("k", "development", "flytesnacks"),
            secret_spec: spec()
        })
        .await
        .is_err()
    );
    svc.get(GetSecretRequest {
        id: id("k", "development", "flytesnacks"),
        include_system_secrets: false,
    })
    .await
    .unwrap();
    svc.list(ListSecretsRequest::default()).await.unwrap();
    assert!(
        svc.create(CreateSecretRequest {
            id: id("k", "", "p"),
            secret_spec: spec()
        })
        .await
        .is_err()
    );
    assert!(
        svc.create(CreateSecretRequest {
            id: id("k2", "d", ""),
            secret_spec: None
        })
        .await
        .is_err()
    );
    assert!(
        svc.update(UpdateSecretRequest {
            id: id("missing", "d", ""),
            secret_spec: spec()
        })
        .await
        .is_err()
    );
    assert!(
        svc.delete(DeleteSecretRequest {
            id: id("k", "", "p"),
            include_system_secrets: false
        })
        .await
        .is_err()
    );
    assert_eq!(count(), 1);

    svc.update(UpdateSecretRequest {
        id: id("k", "development", "flytesnacks"),
        secret_spec: spec(),
    })
    .await
    .unwrap();
    assert_eq!(count(), 2);
    svc.delete(DeleteSecretRequest {
        id: id("k", "development", "flytesnacks"),
        include_system_secrets: false,
    })
    .await
    .unwrap();
    assert_eq!(count(), 3);
    // Delete invalidates even when the secret was not there.
    let e = svc
        .delete(DeleteSecretRequest {
            id: id("k", "development", "flytesnacks"),
            include_system_secrets: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::NotFound);
    assert_eq!(count(), 4);
}

#[tokio::test]
async fn a_failing_or_absent_webhook_never_fails_the_rpc() {
    let (url, seen) = webhook(500).await;
    let svc = service(&url);
    svc.create(CreateSecretRequest {
        id: id("k", "d", ""),
        secret_spec: spec(),
    })
    .await
    .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    // Nothing listens on this port: refused, logged, RPC fine.
    let svc = service("http://127.0.0.1:1");
    svc.create(CreateSecretRequest {
        id: id("k", "d", ""),
        secret_spec: spec(),
    })
    .await
    .unwrap();
    // Unresolvable and malformed URLs: logged, RPC fine.
    for url in ["http://no-such-host.invalid", "http://[::1"] {
        service(url)
            .create(CreateSecretRequest {
                id: id("k", "d", ""),
                secret_spec: spec(),
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_empty_webhook_url_disables_invalidation() {
    assert!(Invalidator::new("").is_none());
    let (url, seen) = webhook(200).await;
    let inv = Invalidator::new(&url).unwrap();
    assert_eq!(inv.invalidate("d", "p", "n").await, 1);
    assert_eq!(
        seen.lock().unwrap()[0].body,
        r#"{"org":"flyte","domain":"d","project":"p","name":"n"}"#
    );
}
