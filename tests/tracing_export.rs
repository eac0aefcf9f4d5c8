//! Traces: with `secret.tracing.otlpEndpoint` set, every RPC is exported over OTLP/gRPC as a
//! server span named like the Go service's (`flyteidl2.secret.SecretService/<Method>`).

mod common;

use common::Server;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_are_exported_as_spans() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(incoming),
    );

    let endpoint = format!("http://{addr}");
    let server = tokio::task::spawn_blocking(move || {
        Server::start(&["--ephemeral", "--secret.tracing.otlpEndpoint", &endpoint])
    })
    .await
    .unwrap();
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let body = br#"{"id":{"name":"traced"}}"#;
        common::http(
            addr,
            "POST",
            "/flyteidl2.secret.SecretService/GetSecret",
            &[("content-type", "application/json")],
            body,
        )
        .unwrap();
    })
    .await
    .unwrap();
    // A clean shutdown flushes the exporter.
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success());
    let requests = collector.0.lock().unwrap().clone();
    let mut names = Vec::new();
    let mut service_names = Vec::new();
    for r in &requests {
        for rs in &r.resource_spans {
            for a in rs.resource.iter().flat_map(|res| &res.attributes) {
                if a.key == "service.name" {
                    service_names.push(format!("{:?}", a.value));
                }
            }
            for ss in &rs.scope_spans {
                names.extend(ss.spans.iter().map(|s| (s.name.clone(), s.kind)));
            }
        }
    }
    assert!(
        names.contains(&("flyteidl2.secret.SecretService/GetSecret".to_owned(), 2)),
        "{names:?}"
    );
    assert!(
        service_names.iter().all(|s| s.contains("secret-service")) && !service_names.is_empty()
    );
}
