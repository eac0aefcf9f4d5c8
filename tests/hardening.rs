//! The real binary under abuse (issue 9): descriptor exhaustion, silent, stalled and idle
//! connections, shutdown with idle connections open, RPCs cut short by resets and deadlines,
//! malformed timeouts, huge echoed input, the fault endpoint's switch, and startup refusals.

mod common;

use bytes::Bytes;
use common::{BIN, Server, http};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const P: &str = "/flyteidl2.secret.SecretService";

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("flytesecret-{name}-{}", uuid::Uuid::new_v4()))
}

/// User plus system CPU time of a process, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within 15 s");
}

/// True when the server closes the connection (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset) => return true,
            Err(_) => return false,
        }
    }
}

/// One keep-alive HTTP/1.1 `GET /healthz` on an open connection; true when answered.
fn healthz_keep_alive(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .is_err()
    {
        return false;
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nOK") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"HTTP/1.1 200")
}

/// Issue 9, defect 3: with descriptors exhausted the accept loop spun and logged millions of
/// lines, and the kube-api listener died for good.
#[test]
fn descriptor_exhaustion_neither_spins_nor_floods_the_log_nor_kills_a_listener() {
    let log = temp_path("fd-log");
    let server = Server::start_with(
        &["ulimit -n 64"],
        &["--ephemeral"],
        Some((log.as_path(), "warn")),
    );
    let kube_api = server.kube_api.unwrap();
    let pid = server.child.id();
    let before = cpu_ticks(pid);
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(TcpStream::connect(server.addr).unwrap());
        held.push(TcpStream::connect(kube_api).unwrap());
    }
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(pid) - before;
    drop(held);
    eventually("the service port answering again", || {
        matches!(
            http(server.addr, "GET", "/readyz", &[], b""),
            Ok((200, _, _))
        )
    });
    eventually("the kube-api port answering again", || {
        matches!(
            http(
                kube_api,
                "GET",
                "/api/v1/namespaces/flyte/secrets",
                &[],
                b""
            ),
            Ok((200, _, _))
        )
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let failures = text.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        (1..=20).contains(&failures),
        "{failures} accept-failure lines (expected a few, rate-limited)"
    );
    assert!(
        spent < 100,
        "the server used {spent} ticks of CPU in 2 s while out of descriptors (busy loop)"
    );
}

/// Issue 9, defect 5: silent, stalled and idle connections were held as long as clients liked.
#[test]
fn silent_stalled_and_idle_connections_are_closed_after_the_configured_timeouts() {
    let server = Server::start(&[
        "--ephemeral",
        "--secret.server.headerReadTimeout",
        "300ms",
        "--secret.server.idleTimeout",
        "700ms",
    ]);
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut partial = TcpStream::connect(server.addr).unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n")
        .unwrap();
    let mut idle = TcpStream::connect(server.addr).unwrap();
    assert!(healthz_keep_alive(&mut idle));
    let within = Duration::from_secs(5);
    assert!(closed_within(&mut silent, within), "silent connection kept");
    assert!(closed_within(&mut partial, within), "stalled head kept");
    assert!(closed_within(&mut idle, within), "idle keep-alive kept");

    // Slowloris: one header line every 100 ms would take 3 s; the head must be cut short.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let mut cut = false;
    for i in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        if slow
            .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
            .is_err()
        {
            cut = true;
            break;
        }
    }
    assert!(
        cut || closed_within(&mut slow, Duration::from_millis(100)),
        "slowloris kept"
    );

    // A busy keep-alive connection outlives both timeouts.
    let mut busy = TcpStream::connect(server.addr).unwrap();
    for i in 0..10 {
        assert!(
            healthz_keep_alive(&mut busy),
            "request {i} on a busy connection"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
}

async fn h2_connection(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, task)
}

fn get_secret_frame(name: &str) -> Bytes {
    use prost::Message as _;
    let msg = flytesecret::proto::flyteidl2::secret::GetSecretRequest {
        id: common::id(name, "d", ""),
        include_system_secrets: false,
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend((msg.len() as u32).to_be_bytes());
    frame.extend(msg);
    Bytes::from(frame)
}

fn grpc_get(addr: SocketAddr, name: &str, timeout: Option<&str>) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::post(format!("http://{addr}{P}/GetSecret"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(t) = timeout {
        b = b.header("grpc-timeout", t);
    }
    b.body(Full::new(get_secret_frame(name))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_get_goaway_after_the_idle_timeout() {
    let server = Server::start(&["--ephemeral", "--secret.server.idleTimeout", "500ms"]);
    let (mut send, conn) = h2_connection(server.addr).await;
    let resp = send
        .send_request(
            http::Request::get(format!("http://{}/healthz", server.addr))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle HTTP/2 connection was kept open")
        .unwrap();
}

/// Issue 9, item 10: SIGTERM waited the whole grace period for idle HTTP/2 and half-sent
/// HTTP/1 connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_connections_at_once() {
    let server = Server::start(&["--ephemeral"]);
    let (mut send, _conn) = h2_connection(server.addr).await;
    let resp = send
        .send_request(
            http::Request::get(format!("http://{}/healthz", server.addr))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut partial = TcpStream::connect(server.addr).unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let mut idle = TcpStream::connect(server.addr).unwrap();
    assert!(healthz_keep_alive(&mut idle));
    let _silent = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100)); // let the server accept it
    let exited = tokio::task::spawn_blocking(move || server.terminate());
    // The grace period is 30 s and the header timeout 10 s; idle connections must use neither.
    let status = tokio::time::timeout(Duration::from_secs(5), exited)
        .await
        .expect("shutdown waited for idle connections")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

fn inject_get_delay(server: &Server, count: u32, millis: u64) {
    let body = json!({"verb": "get", "count": count, "fault": {"kind": "delay", "millis": millis}});
    let (code, _, _) = http(
        server.kube_api.unwrap(),
        "POST",
        "/_flytesecret/faults",
        &[],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 200);
}

/// Issue 9, defect 9: RPCs dropped by a deadline or a stream reset were never counted. Also
/// item 10: malformed timeouts are `invalid_argument`, not ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_deadlines_and_bad_timeouts_are_answered_and_counted() {
    let server = Server::start(&["--ephemeral", "--test-fault-injection"]);
    inject_get_delay(&server, 4, 3000);
    let (send, _conn) = h2_connection(server.addr).await;
    // Two run out of time on the server's side.
    for _ in 0..2 {
        let resp = send
            .clone()
            .send_request(grpc_get(server.addr, "slow", Some("100m")))
            .await
            .unwrap();
        assert_eq!(resp.headers()["grpc-status"], "4", "{resp:?}");
    }
    // Two are reset by the client while they wait.
    for _ in 0..2 {
        let mut s = send.clone();
        let req = grpc_get(server.addr, "slow", None);
        let pending = tokio::spawn(async move { s.send_request(req).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        pending.abort();
    }
    // A malformed grpc-timeout is refused at once.
    let resp = send
        .clone()
        .send_request(grpc_get(server.addr, "x", Some("soon")))
        .await
        .unwrap();
    assert_eq!(resp.headers()["grpc-status"], "3", "{resp:?}");
    let (code, _, body) = http(
        server.addr,
        "POST",
        &format!("{P}/GetSecret"),
        &[
            ("content-type", "application/json"),
            ("connect-timeout-ms", "soon"),
        ],
        br#"{"id":{"name":"x"}}"#,
    )
    .unwrap();
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("invalid_argument"));

    let mut metrics = String::new();
    for _ in 0..50 {
        let (_, _, body) = http(server.addr, "GET", "/metrics", &[], b"").unwrap();
        metrics = String::from_utf8(body).unwrap();
        if metrics.contains("code=\"canceled\"} 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for code in ["deadline_exceeded", "canceled"] {
        let line =
            format!("flytesecret_rpc_requests_total{{method=\"GetSecret\",code=\"{code}\"}} 2");
        assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
    }
}

/// Issue 9, item 10: a 1 MB name came back in a 1 MB error message.
#[test]
fn echoed_input_is_truncated_in_error_texts() {
    let server = Server::start(&["--ephemeral"]);
    let huge = "n".repeat(1024 * 1024);
    let (_, _, body) = http(
        server.addr,
        "POST",
        &format!("{P}/GetSecret"),
        &[("content-type", "application/json")],
        json!({"id": {"name": huge}}).to_string().as_bytes(),
    )
    .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let message = reply["message"].as_str().unwrap();
    assert!(message.len() < 1024, "{} bytes of message", message.len());
    assert!(message.contains("more bytes"), "{message}");
}

/// Issue 9, defect 7: the fault-injection endpoint was served unconditionally.
#[test]
fn the_fault_endpoint_needs_the_test_switch() {
    let server = Server::start(&["--ephemeral"]);
    let body = json!({"verb": "get", "count": 1, "fault": {"kind": "internal_error"}});
    let (code, _, _) = http(
        server.kube_api.unwrap(),
        "POST",
        "/_flytesecret/faults",
        &[],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_ne!(
        code, 200,
        "fault injection accepted without --test-fault-injection"
    );
    let (code, _, _) = http(
        server.addr,
        "POST",
        &format!("{P}/GetSecret"),
        &[("content-type", "application/json")],
        br#"{"id":{"name":"absent"}}"#,
    )
    .unwrap();
    assert_eq!(code, 404, "the Get met an injected fault");
}

/// Issue 9, item 10: these used to start (and fail later, or run on defaults).
#[test]
fn bad_configuration_is_refused_at_startup() {
    let dir = temp_path("bad-config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("typo.yaml"),
        "secret:\n  kubernetes:\n    namspace: x\n",
    )
    .unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--secret.kubernetes.namespace", "Bad_NS"],
            "secret.kubernetes.namespace",
        ),
        (&["--secret.kubernetes.qps", "0"], "secret.kubernetes.qps"),
        (
            &["--secret.kubernetes.burst", "-1"],
            "secret.kubernetes.burst",
        ),
        (&["--config", "nomatch*.yaml"], "matches no file"),
        (&["--config", "typo.yaml"], "did you mean"),
    ];
    for (args, expect) in cases {
        let mut child = std::process::Command::new(BIN)
            .args(["serve", "--ephemeral", "--secret.server.port", "0"])
            .args(*args)
            .current_dir(&dir)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?}: the server started instead of refusing");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(!status.success(), "{args:?} started");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn well_behaved_grpc_still_works_over_the_pipeline() {
    let server = Server::start(&["--ephemeral"]);
    let (send, _conn) = h2_connection(server.addr).await;
    let resp = send
        .clone()
        .send_request(grpc_get(server.addr, "absent", Some("5S")))
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = parts
        .headers
        .get("grpc-status")
        .or(trailers.get("grpc-status"))
        .unwrap();
    assert_eq!(status, "5");
}

/// Issue 9, item 10: file errors at startup did not say which file.
#[test]
fn startup_file_errors_name_the_path() {
    let cases: &[&[&str]] = &[
        &[
            "kube-api",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/etc/passwd/x",
        ],
        &[
            "kube-api",
            "--listen",
            "127.0.0.1:0",
            "--ephemeral",
            "--write-kubeconfig",
            "/etc/passwd/kc",
        ],
        &[
            "serve",
            "--secret.server.port",
            "0",
            "--data-dir",
            "/etc/passwd/x",
        ],
    ];
    for args in cases {
        let out = std::process::Command::new(BIN)
            .args(*args)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        let path = args.last().unwrap();
        assert!(stderr.contains(path), "{args:?}: {stderr}");
    }
}

#[test]
fn rpcs_beyond_the_concurrency_limit_wait_within_their_deadline_and_probes_never_wait() {
    let server = Server::start(&[
        "--ephemeral",
        "--test-fault-injection",
        "--secret.server.maxConcurrentRequests",
        "1",
    ]);
    inject_get_delay(&server, 1, 1500);
    let get = |addr: SocketAddr, timeout_ms: &'static str| {
        http(
            addr,
            "POST",
            &format!("{P}/GetSecret"),
            &[
                ("content-type", "application/json"),
                ("connect-timeout-ms", timeout_ms),
            ],
            br#"{"id":{"name":"absent"}}"#,
        )
        .unwrap()
        .0
    };
    let addr = server.addr;
    let slow = std::thread::spawn(move || get(addr, "10000"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(addr, "300"), 504, "ran beside the slow RPC");
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").unwrap().0, 200);
    assert_eq!(slow.join().unwrap(), 404);
    assert_eq!(get(addr, "300"), 404, "the slot was not given back");
}

/// Issue 9, defect 5: an HTTP/2 peer that stops answering (here: never acknowledges a PING) is
/// dropped after the keepalive timeout, long before the idle timeout.
#[test]
fn an_http2_peer_that_ignores_keepalive_pings_is_dropped() {
    let server = Server::start(&[
        "--ephemeral",
        "--secret.server.idleTimeout",
        "60s",
        "--secret.server.http2KeepaliveInterval",
        "300ms",
        "--secret.server.http2KeepaliveTimeout",
        "300ms",
    ]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    // An empty SETTINGS frame; after it, silence.
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "a peer that never answers pings was kept"
    );
}
