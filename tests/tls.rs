//! TLS on the one port, against the real binary: certificates from rcgen, `curl --cacert` over
//! HTTP/1.1 and HTTP/2 (ALPN) with a token, rotation of the certificate files without a restart,
//! mTLS with the client certificate's CN as the caller, and third-party clients (the flyteidl2
//! Connect client, grpcio, the `flyte` CLI) against an authenticated TLS endpoint.

mod common;
mod secure;

use secure::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

use common::clients_dir;

/// A TLS server with JWT authentication (one EC key in a JWKS file) and an audit log.
struct Fixture {
    dir: TempDir,
    pki: Pki,
    key: SigningKey,
    server: Secure,
    ca: PathBuf,
    cert: PathBuf,
    tls_key: PathBuf,
}

fn tls_config(dir: &TempDir, cert: &str, key: &str, extra: &str) -> String {
    format!(
        "secret:\n  server:\n    tls:\n      certFile: {}\n      keyFile: {}\n{extra}",
        dir.path(cert).display(),
        dir.path(key).display()
    )
}

fn fixture() -> Fixture {
    let dir = TempDir::new();
    let pki = Pki::new("test-ca");
    let (cert_pem, key_pem) = pki.server("flytesecret");
    let cert = dir.write("tls.crt", cert_pem);
    let tls_key = dir.write("tls.key", key_pem);
    let ca = dir.write("ca.crt", &pki.ca_pem);
    let key = ec_key("k1");
    let jwks_file = dir.write("jwks.json", jwks(&[&key]));
    let extra = format!(
        "  auth:\n    jwt:\n      issuer: {ISSUER}\n      audiences: [{AUDIENCE}]\n      jwksFile: {}\n  audit:\n    path: {}\n",
        jwks_file.display(),
        dir.path("audit.jsonl").display()
    );
    let server = Secure::start(&dir, &tls_config(&dir, "tls.crt", "tls.key", &extra), &[]);
    assert!(server.https);
    let url = format!("https://{}/readyz", server.addr);
    let ca_arg = ca.to_str().unwrap().to_owned();
    server.wait_ready(|| matches!(curl(&["--cacert", &ca_arg], &url), Some((200, _, _))));
    Fixture {
        dir,
        pki,
        key,
        server,
        ca,
        cert,
        tls_key,
    }
}

fn list_url(f: &Fixture) -> String {
    format!(
        "https://{}/flyteidl2.secret.SecretService/ListSecrets",
        f.server.addr
    )
}

#[test]
fn curl_over_tls_with_a_token_on_http1_and_http2() {
    let f = fixture();
    let token = sign(&f.key, &claims("alice", &[]));
    let auth = format!("authorization: Bearer {token}");
    let ca = f.ca.to_str().unwrap();
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (code, got_version, body) = curl(
            &[
                "--cacert",
                ca,
                flag,
                "-H",
                "content-type: application/json",
                "-H",
                &auth,
                "-d",
                r#"{"domain":"development"}"#,
            ],
            &list_url(&f),
        )
        .expect("curl connects with the CA");
        assert_eq!((code, got_version.as_str()), (200, version), "{body}");
    }
    // without the token: 401
    let (code, _, body) = curl(
        &[
            "--cacert",
            ca,
            "-H",
            "content-type: application/json",
            "-d",
            "{}",
        ],
        &list_url(&f),
    )
    .unwrap();
    assert_eq!(code, 401, "{body}");
    // without the CA, curl refuses the server; plain HTTP gets no answer it can use
    assert!(curl(&["-d", "{}"], &list_url(&f)).is_none());
    assert!(common::http(f.server.addr, "GET", "/healthz", &[], b"").map_or(true, |r| r.0 != 200));
    // REST over TLS
    let (code, _, _) = curl(
        &["--cacert", ca, "-H", &auth],
        &format!(
            "https://{}/secrets/api/v1?domain=development",
            f.server.addr
        ),
    )
    .unwrap();
    assert_eq!(code, 200);
}

#[test]
fn certificate_files_are_reloaded_without_a_restart() {
    let f = fixture();
    let ca1 = f.ca.to_str().unwrap().to_owned();
    let healthz = format!("https://{}/healthz", f.server.addr);
    assert!(curl(&["--cacert", &ca1], &healthz).is_some());
    let pid = f.server.child.id();

    // cert-manager rotates to a certificate from another CA
    let pki2 = Pki::new("rotated-ca");
    let ca2 = f.dir.write("ca2.crt", &pki2.ca_pem);
    let (cert, key) = pki2.server("flytesecret-rotated");
    // key first, then cert: a handshake in between keeps the old pair (they do not match)
    std::fs::write(&f.tls_key, key).unwrap();
    assert!(
        curl(&["--cacert", &ca1], &healthz).is_some(),
        "a half-written rotation keeps serving the previous certificate"
    );
    std::fs::write(&f.cert, cert).unwrap();
    let ca2 = ca2.to_str().unwrap();
    assert_eq!(
        curl(&["--cacert", ca2], &healthz).map(|r| r.0),
        Some(200),
        "{}",
        f.server.logs()
    );
    assert!(
        curl(&["--cacert", &ca1], &healthz).is_none(),
        "the old certificate is gone"
    );
    assert!(
        f.server
            .logs()
            .contains("reloaded the TLS certificate files")
    );
    // garbage in the files: the last good pair stays
    std::fs::write(&f.cert, "not a certificate").unwrap();
    assert_eq!(curl(&["--cacert", ca2], &healthz).map(|r| r.0), Some(200));
    assert_eq!(f.server.child.id(), pid);
    let _ = &f.pki;
}

#[test]
fn mtls_requires_a_client_certificate_and_names_the_caller_by_its_cn() {
    let dir = TempDir::new();
    let server_pki = Pki::new("server-ca");
    let client_pki = Pki::new("client-ca");
    let (cert, key) = server_pki.server("flytesecret");
    dir.write("tls.crt", cert);
    dir.write("tls.key", key);
    let ca = dir.write("ca.crt", &server_pki.ca_pem);
    let client_ca = dir.write("client-ca.crt", &client_pki.ca_pem);
    let (robot_cert, robot_key) = client_pki.client("robot");
    let robot_crt = dir.write("robot.crt", robot_cert);
    let robot_key = dir.write("robot.key", robot_key);
    let (other_cert, other_key) = client_pki.client("intruder");
    let other_crt = dir.write("other.crt", other_cert);
    let other_key = dir.write("other.key", other_key);
    let stranger_pki = Pki::new("stranger-ca");
    let (s_cert, s_key) = stranger_pki.client("robot");
    let s_crt = dir.write("s.crt", s_cert);
    let s_key = dir.write("s.key", s_key);
    let audit = dir.path("audit.jsonl");
    let extra = format!(
        "      clientCAFile: {}\n  auth:\n    policy:\n      - subjects: [\"cert:robot\"]\n        verbs: [get, list]\n        domains: [\"*\"]\n        projects: [\"*\"]\n  audit:\n    path: {}\n",
        client_ca.display(),
        audit.display()
    );
    let server = Secure::start(&dir, &tls_config(&dir, "tls.crt", "tls.key", &extra), &[]);
    let ca = ca.to_str().unwrap();
    let with = |crt: &PathBuf, key: &PathBuf| {
        vec![
            "--cacert".to_owned(),
            ca.to_owned(),
            "--cert".to_owned(),
            crt.to_str().unwrap().to_owned(),
            "--key".to_owned(),
            key.to_str().unwrap().to_owned(),
        ]
    };
    let robot = with(&robot_crt, &robot_key);
    let robot: Vec<&str> = robot.iter().map(String::as_str).collect();
    let url = format!("https://{}/readyz", server.addr);
    server.wait_ready(|| matches!(curl(&robot, &url), Some((200, _, _))));
    let list = format!(
        "https://{}/flyteidl2.secret.SecretService/ListSecrets",
        server.addr
    );
    let create = format!(
        "https://{}/flyteidl2.secret.SecretService/CreateSecret",
        server.addr
    );
    let json_args = |base: &[&str], body: &str| -> Vec<String> {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        v.extend(["-H", "content-type: application/json", "-d", body].map(String::from));
        v
    };
    let run = |args: Vec<String>, url: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&a, url)
    };
    // no client certificate: the handshake fails
    assert!(run(json_args(&["--cacert", ca], "{}"), &list).is_none());
    // a certificate from an untrusted CA (even with the same CN): refused
    let stranger = with(&s_crt, &s_key);
    let stranger: Vec<&str> = stranger.iter().map(String::as_str).collect();
    assert!(run(json_args(&stranger, "{}"), &list).is_none());
    // robot: allowed to list, not to create
    let (code, _, body) = run(json_args(&robot, "{}"), &list).unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = run(
        json_args(
            &robot,
            &json!({"id": {"name": "x", "domain": "development", "project": "p"}, "secret_spec": {"string_value": "v"}})
                .to_string(),
        ),
        &create,
    )
    .unwrap();
    assert_eq!(code, 403, "{body}");
    // another valid certificate, not in the policy
    let other = with(&other_crt, &other_key);
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    let (code, _, _) = run(json_args(&other, "{}"), &list).unwrap();
    assert_eq!(code, 403);
    let lines = read_lines(&audit);
    assert_eq!(lines[0]["caller"]["subject"], "cert:robot");
    assert_eq!(lines[0]["caller"]["method"], "certificate");
    assert_eq!(lines[0]["code"], "ok");
    assert_eq!(lines[2]["caller"]["subject"], "cert:intruder");
}

#[test]
fn flyteidl2_python_clients_over_tls_with_a_token() {
    let Some(clients) = clients_dir() else { return };
    let f = fixture();
    let token = sign(&f.key, &claims("alice", &[]));
    let endpoint = format!("https://{}", f.server.addr);
    for mode in ["connect-proto", "connect-json", "connect-grpcweb", "grpcio"] {
        let out = Command::new(clients.join("venv-clients/bin/python"))
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/secure_client.py"))
            .args([&endpoint, mode, &token, f.ca.to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.trim() == format!("OK {mode}"),
            "{mode}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lines = read_lines(&f.dir.path("audit.jsonl"));
    assert!(
        lines
            .iter()
            .any(|l| l["caller"]["subject"] == "alice" && l["code"] == "ok")
    );
    assert!(
        !std::fs::read_to_string(f.dir.path("audit.jsonl"))
            .unwrap()
            .contains("tls-value")
    );
}

#[test]
fn flyte_cli_against_an_authenticated_tls_endpoint() {
    let Some(clients) = clients_dir() else { return };
    let f = fixture();
    let token = sign(&f.key, &claims("cli-user", &[]));
    let token_file = f.dir.write("token", &token);
    let home = f.dir.path("home");
    std::fs::create_dir_all(&home).unwrap();
    // The CLI's ExternalCommand auth runs a command and sends its output as the bearer token;
    // caCertFilePath makes it trust the test CA.
    let config = f.dir.write(
        "flyte.yaml",
        format!(
            "admin:\n  endpoint: dns:///{}\n  insecure: false\n  caCertFilePath: {}\n  authType: ExternalCommand\n  command: [\"cat\", \"{}\"]\n  disableKeyring: true\n",
            f.server.addr,
            f.ca.display(),
            token_file.display()
        ),
    );
    let flyte = |args: &[&str]| {
        common::flyte_output(
            &clients,
            &home,
            &["--config".as_ref(), config.as_os_str()],
            args,
        )
    };
    let out = flyte(&[
        "create",
        "secret",
        "cli_tls_secret",
        "--value",
        "cli-s3cr3t",
        "-p",
        "flytesnacks",
        "-d",
        "development",
    ]);
    let got = connect_tls(
        &f,
        &token,
        "GetSecret",
        r#"{"id":{"name":"cli_tls_secret","domain":"development","project":"flytesnacks"}}"#,
    );
    assert_eq!(got, 200, "the CLI did not create the secret: {out}");
    let listed = flyte(&["get", "secret", "-p", "flytesnacks", "-d", "development"]);
    assert!(listed.contains("cli_tls_secret"), "{listed}");
    let lines = read_lines(&f.dir.path("audit.jsonl"));
    assert!(
        lines.iter().any(|l| l["caller"]["subject"] == "cli-user"
            && l["method"] == "flyteidl2.secret.SecretService/CreateSecret"
            && l["code"] == "ok"),
        "{lines:?}"
    );
}

fn connect_tls(f: &Fixture, token: &str, method: &str, body: &str) -> u16 {
    let auth = format!("authorization: Bearer {token}");
    curl(
        &[
            "--cacert",
            f.ca.to_str().unwrap(),
            "-H",
            "content-type: application/json",
            "-H",
            &auth,
            "-d",
            body,
        ],
        &format!(
            "https://{}/flyteidl2.secret.SecretService/{method}",
            f.server.addr
        ),
    )
    .map_or(0, |r| r.0)
}

/// A client that opens a TCP connection to the TLS port and never starts the handshake is
/// closed once `secret.server.headerReadTimeout` passes (the one bound on a connection's first
/// bytes, plain or TLS), rather than holding the connection as long as it likes.
#[test]
fn a_stalled_tls_handshake_is_closed_after_the_header_read_timeout() {
    use std::io::Read as _;
    let dir = TempDir::new();
    let pki = Pki::new("test-ca");
    let (cert_pem, key_pem) = pki.server("flytesecret");
    dir.write("tls.crt", cert_pem);
    dir.write("tls.key", key_pem);
    let server = Secure::start(
        &dir,
        &tls_config(&dir, "tls.crt", "tls.key", ""),
        &["--secret.server.headerReadTimeout", "1s"],
    );
    let mut silent = std::net::TcpStream::connect(server.addr).unwrap();
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    // The server closes its side: EOF (or a reset), not the client's read timeout.
    match silent.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the stalled handshake was not closed: {other:?}"),
    }
}
