//! Load benchmark: the release binary under concurrent clients, every protocol against its floor.
//!
//! Starts `flytesecret serve` (embedded engine, default configuration apart from the ports) with
//! the engine's kube-api face, creates one secret, then for each protocol drives `GetSecret` from
//! `--concurrency` clients for `--seconds` and prints requests per second, p50/p99 latency, the
//! server's CPU time per request, and each figure's ratio to the floor: a plain `GET` of the same
//! Kubernetes Secret on the kube-api face, which is what every `GetSecret` costs at least.
//! gRPC must run over HTTP/2, so before gRPC the same GET is also measured over HTTP/2 (h2c)
//! and gRPC's ratio to that floor is printed too.
//!
//! ```sh
//! cargo bench --bench load                                   # 64 clients, 5 s per protocol
//! cargo bench --bench load -- --concurrency 16 --seconds 10 --protocols grpc,connect-json
//! cargo bench --bench load -- --rpc update                   # durable vs in-memory UpdateSecret
//! ```
//!
//! `--rpc update` measures the durable store instead: it runs the binary twice, with
//! `--ephemeral` and then with `--data-dir` in a fresh temporary directory, drives unconditional
//! `UpdateSecret`s (each client updating a secret of its own with a new value each time, as the
//! Flyte SDK does; 16 clients and Connect proto unless given) and prints the durable store's
//! throughput as a ratio to the in-memory store's.
//!
//! Clients are real and independent of the server code: tonic for gRPC (one HTTP/2 connection
//! per client), hyper for Connect and the floor (one HTTP/1.1 keep-alive connection per client).
//! Targets and measured figures live in BENCHMARKS.md; CI builds this, it never judges speed.

use bytes::Bytes;
use flytesecret::proto::flyteidl2::secret::secret_service_client::SecretServiceClient;
use flytesecret::proto::flyteidl2::secret::{GetSecretRequest, SecretIdentifier};
use http_body_util::{BodyExt, Full};
use prost::Message as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const NAME: &str = "load_bench";
const DOMAIN: &str = "development";
const PROJECT: &str = "flytesnacks";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// `GET /api/v1/namespaces/flyte/secrets/<name>` on the kube-api face: the floor.
    KubeGet,
    /// The same GET over HTTP/2 (one h2c connection per client, as gRPC uses): the floor of
    /// the transport gRPC must use, printed beside the HTTP/1.1 one.
    KubeGetH2,
    Grpc,
    ConnectProto,
    ConnectJson,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::KubeGet => "kube-api GET (floor)",
            Protocol::KubeGetH2 => "kube-api GET, HTTP/2",
            Protocol::Grpc => "gRPC",
            Protocol::ConnectProto => "Connect proto",
            Protocol::ConnectJson => "Connect JSON",
        }
    }

    fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "grpc" => Protocol::Grpc,
            "connect-proto" => Protocol::ConnectProto,
            "connect-json" => Protocol::ConnectJson,
            _ => return None,
        })
    }
}

struct Options {
    /// `--rpc update`: the durable-vs-memory UpdateSecret comparison instead of GetSecret.
    update: bool,
    concurrency: usize,
    seconds: u64,
    protocols: Vec<Protocol>,
    extra: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        update: false,
        concurrency: 0,
        seconds: 5,
        protocols: vec![
            Protocol::Grpc,
            Protocol::ConnectProto,
            Protocol::ConnectJson,
        ],
        extra: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--concurrency" => o.concurrency = args.next().and_then(|v| v.parse().ok()).unwrap(),
            "--seconds" => o.seconds = args.next().and_then(|v| v.parse().ok()).unwrap(),
            "--protocols" => {
                o.protocols = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|p| Protocol::parse(p).unwrap_or_else(|| panic!("unknown protocol {p}")))
                    .collect()
            }
            // Passed through to `flytesecret serve`, e.g. `--serve-arg --data-dir=/tmp/d`.
            "--serve-arg" => o.extra.extend(args.next()),
            "--rpc" => match args.next().as_deref() {
                Some("get") => o.update = false,
                Some("update") => o.update = true,
                other => panic!("--rpc takes get or update, not {other:?}"),
            },
            // `cargo bench` adds `--bench`; libtest-style filters are not used here.
            _ => {}
        }
    }
    if o.concurrency == 0 {
        o.concurrency = if o.update { 16 } else { 64 };
    }
    if o.update && !std::env::args().any(|a| a == "--protocols") {
        o.protocols = vec![Protocol::ConnectProto];
    }
    o
}

/// The service under test, killed on drop.
struct Server {
    child: Child,
    service: String,
    kube_api: String,
    _dir: tempdir::Dir,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[String]) -> Server {
    let dir = std::env::temp_dir().join(format!("flytesecret-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flytesecret"))
        .args(["serve", "--secret.server.port", "0"])
        .args(["--kube-api-listen", "127.0.0.1:0"])
        .args(["--secret.webhookURL", ""])
        .args(if extra.is_empty() {
            vec!["--ephemeral".to_owned()]
        } else {
            extra.to_vec()
        })
        .env("RUST_LOG", "warn")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("flytesecret binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut service, mut kube_api) = (None, None);
    while service.is_none() || kube_api.is_none() {
        let line = lines.next().expect("server exited").unwrap();
        if let Some((_, a)) = line.split_once("embedded Kubernetes API on http://") {
            kube_api = Some(a.trim().to_owned());
        }
        if let Some((_, a)) = line.split_once("SecretService on http://") {
            service = Some(a.trim().to_owned());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        service: service.unwrap(),
        kube_api: kube_api.unwrap(),
        _dir: tempdir::Dir(dir),
    }
}

/// User plus system CPU time the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) are space separated; utime and
    // stime are fields 14 and 15 overall, 12 and 13 after the closing parenthesis.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

fn id() -> Option<SecretIdentifier> {
    Some(SecretIdentifier {
        name: NAME.into(),
        domain: DOMAIN.into(),
        project: PROJECT.into(),
        ..Default::default()
    })
}

/// A client connection: HTTP/1.1 keep-alive, or HTTP/2 with prior knowledge (h2c) as tonic
/// opens one.
enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// A tonic client (its generated stub and codec) on an HTTP/2 connection of its own, opened
/// as the HTTP/2 floor's is.
/// tonic's `Channel` is not used: its buffer task and reconnection layers cost the load
/// generator more CPU per call than the server's whole GetSecret, on the cores the server
/// shares (the original measurement used h2load, whose cost is smaller still).
async fn grpc_client(service: &str) -> SecretServiceClient<H2Grpc> {
    let send = h2_connect(tcp_connect(service).await).await;
    SecretServiceClient::with_origin(H2Grpc(send), format!("http://{service}").parse().unwrap())
}

/// A TCP connection to `addr` with TCP_NODELAY, as real clients set it.
async fn tcp_connect(addr: &str) -> hyper_util::rt::TokioIo<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    hyper_util::rt::TokioIo::new(stream)
}

/// An HTTP/2 connection (prior knowledge, as tonic opens one) carrying bodies of type `B`.
async fn h2_connect<B>(
    io: hyper_util::rt::TokioIo<tokio::net::TcpStream>,
) -> hyper::client::conn::http2::SendRequest<B>
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let executor = hyper_util::rt::TokioExecutor::new();
    let (send, conn) = hyper::client::conn::http2::handshake(executor, io)
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// One HTTP/2 connection as the transport under a tonic client.
#[derive(Clone)]
struct H2Grpc(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower::Service<http::Request<tonic::body::Body>> for H2Grpc {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, hyper::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// A connection to `addr` (TCP_NODELAY, as real clients set it), over HTTP/2 when `h2`.
async fn connect(addr: &str, h2: bool) -> Conn {
    let io = tcp_connect(addr).await;
    if h2 {
        Conn::H2(h2_connect(io).await)
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        Conn::H1(send)
    }
}

impl Conn {
    /// Sends `req` once the connection is ready and reads the whole answer: its status and body.
    async fn request(&mut self, mut req: http::Request<Full<Bytes>>) -> (u16, Bytes) {
        let resp = match self {
            Conn::H1(send) => {
                send.ready().await.unwrap();
                send.send_request(req).await.unwrap()
            }
            Conn::H2(send) => {
                // HTTP/2 carries the authority in the request's URI.
                req.headers_mut().remove(http::header::HOST);
                send.ready().await.unwrap();
                send.send_request(req).await.unwrap()
            }
        };
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }
}

async fn post(send: &mut Conn, addr: &str, path: &str, ct: &str, body: Bytes) -> u16 {
    let req = http::Request::post(format!("http://{addr}{path}"))
        .header("host", addr)
        .header("content-type", ct)
        .body(Full::new(body))
        .unwrap();
    send.request(req).await.0
}

async fn get(send: &mut Conn, addr: &str, path: &str) -> u16 {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("host", addr)
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send.request(req).await.0
}

/// One client: a connection of its own, requests back to back until `stop`.
async fn client(
    protocol: Protocol,
    server: Arc<(String, String)>,
    stop: Arc<AtomicBool>,
) -> Vec<u32> {
    let (service, kube_api) = (&server.0, &server.1);
    let mut latencies = Vec::with_capacity(1 << 16);
    let get_path = format!(
        "/api/v1/namespaces/flyte/secrets/{}",
        flytesecret::naming::SecretId::new(
            flytesecret::naming::DEFAULT_ORGANIZATION,
            DOMAIN,
            PROJECT,
            NAME
        )
        .encode()
        .object_name()
    );
    let request = GetSecretRequest {
        id: id(),
        include_system_secrets: false,
    };
    let proto_body = Bytes::from(request.encode_to_vec());
    let json_body = Bytes::from(
        serde_json::json!({"id": {"name": NAME, "domain": DOMAIN, "project": PROJECT}}).to_string(),
    );
    let path = "/flyteidl2.secret.SecretService/GetSecret";
    match protocol {
        Protocol::Grpc => {
            let mut c = grpc_client(service).await;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                c.get_secret(request.clone()).await.unwrap();
                latencies.push(t.elapsed().as_micros() as u32);
            }
        }
        Protocol::ConnectProto
        | Protocol::ConnectJson
        | Protocol::KubeGet
        | Protocol::KubeGetH2 => {
            let addr = match protocol {
                Protocol::KubeGet | Protocol::KubeGetH2 => kube_api,
                _ => service,
            };
            let mut send = connect(addr, protocol == Protocol::KubeGetH2).await;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let status = match protocol {
                    Protocol::ConnectProto => {
                        post(
                            &mut send,
                            addr,
                            path,
                            "application/proto",
                            proto_body.clone(),
                        )
                        .await
                    }
                    Protocol::ConnectJson => {
                        post(&mut send, addr, path, "application/json", json_body.clone()).await
                    }
                    _ => get(&mut send, addr, &get_path).await,
                };
                assert_eq!(status, 200, "{protocol:?}");
                latencies.push(t.elapsed().as_micros() as u32);
            }
        }
    }
    latencies
}

struct Figures {
    rps: f64,
    p50_us: u32,
    p99_us: u32,
    cpu_us_per_req: f64,
    /// The load generator's own CPU per request (its clients share the server's two cores).
    client_us_per_req: f64,
}

/// Runs `warm_up` clients briefly (connection set-up is not measured), then `o.concurrency`
/// clients for `o.seconds`, and sums up their latencies and the server's CPU time. A client is
/// `client(index, stop)`: it calls until `stop` is set and returns its latencies in us.
async fn measure<C, F>(pid: u32, warm_up: usize, o: &Options, client: C) -> Figures
where
    C: Fn(usize, Arc<AtomicBool>) -> F,
    F: std::future::Future<Output = Vec<u32>> + Send + 'static,
{
    let warm = Arc::new(AtomicBool::new(false));
    let w: Vec<_> = (0..warm_up)
        .map(|i| tokio::spawn(client(i, warm.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    warm.store(true, Ordering::Relaxed);
    for h in w {
        h.await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_time(pid);
    let own0 = cpu_time(std::process::id());
    let t0 = Instant::now();
    let handles: Vec<_> = (0..o.concurrency)
        .map(|i| tokio::spawn(client(i, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let elapsed = t0.elapsed();
    let cpu = cpu_time(pid) - cpu0;
    let own = cpu_time(std::process::id()) - own0;
    all.sort_unstable();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Figures {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50_us: at(0.50),
        p99_us: at(0.99),
        cpu_us_per_req: cpu.as_secs_f64() * 1e6 / all.len() as f64,
        client_us_per_req: own.as_secs_f64() * 1e6 / all.len() as f64,
    }
}

async fn drive(protocol: Protocol, server: &Server, o: &Options) -> Figures {
    let addrs = Arc::new((server.service.clone(), server.kube_api.clone()));
    measure(server.child.id(), o.concurrency.min(8), o, |_, stop| {
        client(protocol, addrs.clone(), stop)
    })
    .await
}

fn main() {
    let o = options();
    if o.update {
        updates::run(&o);
        return;
    }
    let server = start(&o.extra);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut send = connect(&server.service, false).await;
        let create = serde_json::json!({
            "id": {"name": NAME, "domain": DOMAIN, "project": PROJECT},
            "secretSpec": {"stringValue": "load-bench-value"},
        });
        // The service answers before its startup has created the namespace: retry a 5xx.
        let mut status = 0;
        for _ in 0..50 {
            status = post(
                &mut send,
                &server.service,
                "/flyteidl2.secret.SecretService/CreateSecret",
                "application/json",
                Bytes::from(create.to_string()),
            )
            .await;
            if status < 500 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 200, "creating the benchmark secret");

        println!(
            "GetSecret, {} clients, {} s each, server pid {} (embedded engine)",
            o.concurrency,
            o.seconds,
            server.child.id()
        );
        println!(
            "{:<22} {:>10} {:>9} {:>9} {:>11} {:>9} {:>9} {:>10}",
            "protocol", "req/s", "p50 ms", "p99 ms", "cpu us/req", "x floor", "cpu x", "client us"
        );
        let floor = drive(Protocol::KubeGet, &server, &o).await;
        let row = |p: Protocol, f: &Figures| {
            println!(
                "{:<22} {:>10.0} {:>9.2} {:>9.2} {:>11.1} {:>9.2} {:>9.2} {:>10.1}",
                p.name(),
                f.rps,
                f.p50_us as f64 / 1000.0,
                f.p99_us as f64 / 1000.0,
                f.cpu_us_per_req,
                f.rps / floor.rps,
                f.cpu_us_per_req / floor.cpu_us_per_req,
                f.client_us_per_req
            )
        };
        row(Protocol::KubeGet, &floor);
        let mut h2_floor = None;
        for &p in &o.protocols {
            if p == Protocol::Grpc && h2_floor.is_none() {
                let f = drive(Protocol::KubeGetH2, &server, &o).await;
                row(Protocol::KubeGetH2, &f);
                h2_floor = Some(f);
            }
            let f = drive(p, &server, &o).await;
            row(p, &f);
            if let (Protocol::Grpc, Some(h2)) = (p, &h2_floor) {
                println!(
                    "{:<22} {:>52.2} {:>9.2}",
                    "  gRPC x HTTP/2 floor",
                    f.rps / h2.rps,
                    f.cpu_us_per_req / h2.cpu_us_per_req
                );
            }
        }
    });
}

/// `--rpc update`: UpdateSecret throughput of the durable store against the in-memory one.
mod updates {
    use super::*;
    use flytesecret::proto::flyteidl2::secret::{SecretSpec, UpdateSecretRequest, secret_spec};

    fn name(client: usize) -> String {
        format!("{NAME}_u{client}")
    }

    fn request(client: usize, round: u64) -> UpdateSecretRequest {
        UpdateSecretRequest {
            id: Some(SecretIdentifier {
                name: name(client),
                domain: DOMAIN.into(),
                project: PROJECT.into(),
                ..Default::default()
            }),
            secret_spec: Some(SecretSpec {
                // A new value every time: an update that changes nothing writes nothing.
                value: Some(secret_spec::Value::StringValue(format!(
                    "value-{client}-{round}"
                ))),
                ..Default::default()
            }),
        }
    }

    /// One client: its own connection and its own secret, updates back to back until `stop`.
    async fn client(
        protocol: Protocol,
        service: Arc<String>,
        index: usize,
        stop: Arc<AtomicBool>,
    ) -> Vec<u32> {
        let mut latencies = Vec::with_capacity(1 << 14);
        let path = "/flyteidl2.secret.SecretService/UpdateSecret";
        let mut round = 0u64;
        match protocol {
            Protocol::Grpc => {
                let mut c = grpc_client(&service).await;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let t = Instant::now();
                    c.update_secret(request(index, round)).await.unwrap();
                    latencies.push(t.elapsed().as_micros() as u32);
                }
            }
            Protocol::ConnectProto | Protocol::ConnectJson => {
                let mut send = connect(&service, false).await;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let req = request(index, round);
                    let (ct, body) = if protocol == Protocol::ConnectProto {
                        ("application/proto", Bytes::from(req.encode_to_vec()))
                    } else {
                        let json = serde_json::json!({
                            "id": {"name": name(index), "domain": DOMAIN, "project": PROJECT},
                            "secretSpec": {"stringValue": format!("value-{index}-{round}")},
                        });
                        ("application/json", Bytes::from(json.to_string()))
                    };
                    let t = Instant::now();
                    let status = post(&mut send, &service, path, ct, body).await;
                    assert_eq!(status, 200, "UpdateSecret over {protocol:?}");
                    latencies.push(t.elapsed().as_micros() as u32);
                }
            }
            Protocol::KubeGet | Protocol::KubeGetH2 => {
                unreachable!("the floor is not an UpdateSecret")
            }
        }
        latencies
    }

    async fn drive(protocol: Protocol, server: &Server, o: &Options) -> Figures {
        let service = Arc::new(server.service.clone());
        // Every client warms up its own secret's connection.
        super::measure(server.child.id(), o.concurrency, o, |i, stop| {
            client(protocol, service.clone(), i, stop)
        })
        .await
    }

    /// Starts the binary with `args`, creates each client's secret, measures every protocol.
    fn measure(rt: &tokio::runtime::Runtime, args: &[String], o: &Options) -> Vec<Figures> {
        let server = start(args);
        rt.block_on(async {
            let mut send = connect(&server.service, false).await;
            // The secrets namespace is made sure of after the port opens (through the store,
            // so with an fsync when durable): wait until the service says it is ready.
            let deadline = Instant::now() + Duration::from_secs(10);
            while get(&mut send, &server.service, "/readyz").await != 200 {
                assert!(
                    Instant::now() < deadline,
                    "the service did not become ready"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for i in 0..o.concurrency {
                let create = serde_json::json!({
                    "id": {"name": name(i), "domain": DOMAIN, "project": PROJECT},
                    "secretSpec": {"stringValue": "load-bench-value"},
                });
                let req = http::Request::post(format!(
                    "http://{}/flyteidl2.secret.SecretService/CreateSecret",
                    server.service
                ))
                .header("host", &server.service)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(create.to_string())))
                .unwrap();
                let (status, body) = send.request(req).await;
                assert_eq!(status, 200, "creating the benchmark secrets: {body:?}");
            }
            let mut out = Vec::new();
            for &p in &o.protocols {
                out.push(drive(p, &server, o).await);
            }
            out
        })
    }

    pub fn run(o: &Options) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data =
            std::env::temp_dir().join(format!("flytesecret-load-data-{}", std::process::id()));
        let _cleanup = tempdir::Dir(data.clone());
        let mut durable_args = vec!["--data-dir".to_owned(), data.display().to_string()];
        durable_args.extend(o.extra.iter().cloned());
        println!(
            "UpdateSecret, {} clients (a secret each), {} s each; in-memory (--ephemeral) then durable (--data-dir {})",
            o.concurrency,
            o.seconds,
            data.display()
        );
        let mut memory_args = vec!["--ephemeral".to_owned()];
        memory_args.extend(o.extra.iter().cloned());
        let memory = measure(&rt, &memory_args, o);
        let durable = measure(&rt, &durable_args, o);
        println!(
            "{:<14} {:<8} {:>10} {:>9} {:>9} {:>11} {:>10} {:>10}",
            "protocol", "store", "req/s", "p50 ms", "p99 ms", "cpu us/req", "x memory", "client us"
        );
        for (i, &p) in o.protocols.iter().enumerate() {
            for (store, f) in [("memory", &memory[i]), ("durable", &durable[i])] {
                println!(
                    "{:<14} {:<8} {:>10.0} {:>9.2} {:>9.2} {:>11.1} {:>10.2} {:>10.1}",
                    p.name(),
                    store,
                    f.rps,
                    f.p50_us as f64 / 1000.0,
                    f.p99_us as f64 / 1000.0,
                    f.cpu_us_per_req,
                    f.rps / memory[i].rps,
                    f.client_us_per_req
                );
            }
        }
    }
}
