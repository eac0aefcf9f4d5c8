//! Clients nobody here wrote, against the real binary on the embedded engine: the `flyteidl2`
//! package's Connect client and gRPC stub, the `flyte` CLI, `buf curl`, and `curl`.
//!
//! The clients are installed by `ci/setup-clients` (pinned versions, throwaway environments).
//! Locally a missing install skips with a printed reason; under CI it fails loudly.

mod common;

use common::{Server, header, http};
use std::path::PathBuf;
use std::process::Command;

use common::clients_dir;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

#[test]
fn flyteidl2_python_clients_over_every_protocol() {
    let Some(dir) = clients_dir() else { return };
    let server = Server::start(&["--ephemeral"]);
    for mode in ["connect-proto", "connect-json", "connect-grpcweb", "grpcio"] {
        let out = Command::new(dir.join("venv-clients/bin/python"))
            .arg(script("python_client.py"))
            .arg(server.url())
            .arg(mode)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.trim() == format!("OK {mode}"),
            "{mode}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs the `flyte` CLI against `server` with a throwaway home; stdout and stderr together.
fn flyte_cli(dir: &std::path::Path, server: &Server) -> impl Fn(&[&str]) -> String + use<> {
    let home = server.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let endpoint = format!("dns:///{}", server.addr);
    let dir = dir.to_owned();
    move |args: &[&str]| {
        let leading = [
            "--endpoint".as_ref(),
            endpoint.as_ref(),
            "--insecure".as_ref(),
        ];
        common::flyte_output(&dir, &home, &leading, args)
    }
}

#[test]
fn flyte_cli_creates_gets_and_deletes_secrets() {
    let Some(dir) = clients_dir() else { return };
    let server = Server::start(&["--ephemeral"]);
    let flyte = flyte_cli(&dir, &server);
    flyte(&[
        "create",
        "secret",
        "cli_secret",
        "--value",
        "s3cr3t",
        "-p",
        "flytesnacks",
        "-d",
        "development",
    ]);
    flyte(&["create", "secret", "org_secret", "--value", "x"]);
    let connect = |body: &str| {
        let (code, _, raw) = http(
            server.addr,
            "POST",
            "/flyteidl2.secret.SecretService/GetSecret",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .unwrap();
        (code, String::from_utf8_lossy(&raw).into_owned())
    };
    assert_eq!(
        connect(r#"{"id":{"name":"cli_secret","domain":"development","project":"flytesnacks"}}"#).0,
        200
    );
    assert_eq!(connect(r#"{"id":{"name":"org_secret"}}"#).0, 200);
    let scoped = |verb: &str, name: Option<&str>| {
        let mut args = vec![verb, "secret"];
        args.extend(name);
        args.extend(["-p", "flytesnacks", "-d", "development"]);
        flyte(&args)
    };
    let one = scoped("get", Some("cli_secret"));
    assert!(
        one.contains("cli_secret") && !one.contains("s3cr3t"),
        "{one}"
    );
    let all = scoped("get", None);
    assert!(all.contains("cli_secret"), "{all}");
    let deleted = scoped("delete", Some("cli_secret"));
    assert!(
        deleted.contains("Successfully deleted secret cli_secret"),
        "{deleted}"
    );
    assert_eq!(
        connect(r#"{"id":{"name":"cli_secret","domain":"development","project":"flytesnacks"}}"#).0,
        404
    );
}

#[test]
fn buf_curl_over_connect_grpc_and_grpcweb_with_reflection() {
    let Some(dir) = clients_dir() else { return };
    let server = Server::start(&["--ephemeral"]);
    let buf = dir.join("node/node_modules/.bin/buf");
    let call = |protocol: &str, method: &str, data: &str| {
        let mut cmd = Command::new(&buf);
        cmd.args(["curl", "--protocol", protocol, "--data", data]);
        if protocol == "grpc" {
            cmd.arg("--http2-prior-knowledge");
        }
        let out = cmd
            .arg(format!(
                "{}/flyteidl2.secret.SecretService/{method}",
                server.url()
            ))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (i, protocol) in ["connect", "grpc", "grpcweb"].into_iter().enumerate() {
        let name = format!("buf-{i}");
        let (ok, _, err) = call(
            protocol,
            "CreateSecret",
            &format!(
                r#"{{"id":{{"name":"{name}","domain":"d"}},"secretSpec":{{"stringValue":"v"}}}}"#
            ),
        );
        assert!(ok, "{protocol} create: {err}");
        let (ok, out, err) = call(
            protocol,
            "GetSecret",
            &format!(r#"{{"id":{{"name":"{name}","domain":"d"}}}}"#),
        );
        assert!(
            ok && out.contains("FULLY_PRESENT"),
            "{protocol} get: {out}{err}"
        );
        let (ok, _, err) = call(protocol, "GetSecret", r#"{"id":{"name":"missing"}}"#);
        assert!(
            !ok && err.contains("not_found"),
            "{protocol} missing: {err}"
        );
        let (ok, out, err) = call(protocol, "ListSecrets", r#"{"domain":"d"}"#);
        assert!(ok && out.contains(&name), "{protocol} list: {out}{err}");
    }
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

#[test]
fn curl_connect_json_and_rest_routes_byte_for_byte() {
    let server = Server::start(&["--ephemeral", "--secret.kubernetes.clusterName", "c1"]);
    let base = server.url();
    let connect = format!("{base}/flyteidl2.secret.SecretService");
    let json = ["-H", "content-type: application/json"];
    let post =
        |url: &str, body: &str| curl(&[&json[..], &["-X", "POST", url, "-d", body]].concat());

    assert_eq!(
        post(
            &format!("{connect}/CreateSecret"),
            r#"{"id":{"name":"k","domain":"d"},"secretSpec":{"stringValue":"v"}}"#
        ),
        (200, "{}".into())
    );
    assert_eq!(
        post(
            &format!("{connect}/CreateSecret"),
            r#"{"id":{"name":"k","domain":"d"},"secretSpec":{"stringValue":"v"}}"#
        ),
        (
            409,
            format!(
                r#"{{"code":"already_exists","message":"secrets \"{}\" already exists"}}"#,
                flytesecret::naming::SecretId::new("flyte", "d", "", "k")
                    .encode()
                    .object_name()
            )
        )
    );
    assert_eq!(
        post(&format!("{connect}/GetSecret"), r#"{"id":{"name":"zz"}}"#),
        (
            404,
            r#"{"code":"not_found","message":"secret zz not found"}"#.into()
        )
    );
    assert_eq!(
        post(&format!("{connect}/DeleteSecret"), r#"{"id":{"name":"k","project":"p"}}"#),
        (400, r#"{"code":"invalid_argument","message":"project-scoped secrets must also specify a domain, got project=\"p\" domain=\"\""}"#.into())
    );
    let (code, _) = curl(&[
        "-X",
        "POST",
        &format!("{connect}/GetSecret"),
        "-H",
        "content-type: application/xml",
        "-d",
        "<x/>",
    ]);
    assert_eq!(code, 415);

    // REST: the routes google.api.http declares.
    let rest = format!("{base}/secrets/api/v1");
    assert_eq!(
        post(
            &rest,
            r#"{"id":{"name":"r","domain":"d"},"secretSpec":{"stringValue":"v"}}"#
        ),
        (200, "{}".into())
    );
    let (code, body) = curl(&[&format!("{rest}/name/r?id.domain=d")]);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["secret"]["id"],
        serde_json::json!({"name": "r", "domain": "d"})
    );
    assert_eq!(
        v["secret"]["secretMetadata"]["secretStatus"]["clusterStatus"][0]["cluster"]["name"],
        "c1"
    );
    let (code, body) = curl(
        &[
            &json[..],
            &[
                "-X",
                "PUT",
                &format!("{rest}/name/r"),
                "-d",
                r#"{"id":{"domain":"d"},"secretSpec":{"stringValue":"w"}}"#,
            ],
        ]
        .concat(),
    );
    assert_eq!((code, body.as_str()), (200, "{}"));
    let (code, body) = curl(&[&format!("{rest}?domain=d&limit=1")]);
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["secrets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        curl(&["-X", "DELETE", &format!("{rest}/name/r?id.domain=d")]),
        (200, "{}".into())
    );
    assert_eq!(
        curl(&[&format!("{rest}/name/r?id.domain=d")]),
        (
            404,
            r#"{"code":5,"message":"secret r not found","details":[]}"#.into()
        )
    );
    let (code, _, _) = http(server.addr, "PATCH", "/secrets/api/v1/name/r", &[], b"").unwrap();
    assert_eq!(code, 405);
    let (code, headers, _) = http(
        server.addr,
        "GET",
        "/flyteidl2.secret.SecretService/GetSecret",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!((code, header(&headers, "allow")), (405, Some("POST")));
}

fn b64(v: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// The image-pull Secret the webhook would copy into a pod, as kubectl reads it: its type and
/// its decoded `.dockerconfigjson`.
fn kubectl_image_pull_secret(server: &Server, name: &str) -> (String, serde_json::Value) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .args(["-n", "flyte", "get", "secret", name, "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    (
        v["type"].as_str().unwrap().to_owned(),
        serde_json::from_slice(&raw).unwrap(),
    )
}

#[test]
fn flyte_cli_image_pull_secrets_become_dockerconfigjson_secrets() {
    let Some(dir) = clients_dir() else { return };
    let log = std::env::temp_dir().join(format!(
        "flytesecret-imagepull-{}.log",
        uuid::Uuid::new_v4()
    ));
    let server = Server::start_logging(&["--ephemeral"], Some(&log));
    let flyte = flyte_cli(&dir, &server);
    let out = flyte(&[
        "create",
        "secret",
        "ghcr_creds",
        "--type",
        "image_pull",
        "--registry",
        "ghcr.io",
        "--username",
        "robot",
        "--password",
        "hunter2-pass",
    ]);
    assert!(!out.contains("hunter2"), "{out}");
    let docker_config = server.dir.join("docker-config.json");
    std::fs::write(
        &docker_config,
        serde_json::json!({"auths": {
            "quay.io": {"auth": b64("bot:tok3n-pass")},
            "docker.io": {"auth": b64("other:not-this-one")},
        }})
        .to_string(),
    )
    .unwrap();
    let out = flyte(&[
        "create",
        "secret",
        "quay_creds",
        "--type",
        "image_pull",
        "--from-docker-config",
        "--docker-config-path",
        docker_config.to_str().unwrap(),
        "--registries",
        "quay.io",
    ]);
    assert!(!out.contains("tok3n"), "{out}");

    // The service reports the type, and so does the CLI.
    let (code, _, body) = http(
        server.addr,
        "POST",
        "/flyteidl2.secret.SecretService/GetSecret",
        &[("content-type", "application/json")],
        br#"{"id":{"name":"ghcr_creds"}}"#,
    )
    .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(r#""type":"SECRET_TYPE_IMAGE_PULL_SECRET""#),
        "{body}"
    );
    let listed = flyte(&["get", "secret"]);
    for name in ["ghcr_creds", "quay_creds"] {
        let line = listed
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{listed}"));
        assert!(line.contains("image_pull"), "{listed}");
    }
    assert!(!listed.contains("img-pull-"), "{listed}");

    if common::kubectl_available() {
        let ghcr = flytesecret::naming::image_pull_name("flyte", "", "", "ghcr_creds");
        let (kind, config) = kubectl_image_pull_secret(&server, &ghcr);
        assert_eq!(kind, "kubernetes.io/dockerconfigjson");
        assert_eq!(
            config,
            serde_json::json!({"auths": {"ghcr.io": {"auth": b64("robot:hunter2-pass")}}})
        );
        let quay = flytesecret::naming::image_pull_name("flyte", "", "", "quay_creds");
        let (kind, config) = kubectl_image_pull_secret(&server, &quay);
        assert_eq!(kind, "kubernetes.io/dockerconfigjson");
        assert_eq!(
            config,
            serde_json::json!({"auths": {"quay.io": {"auth": b64("bot:tok3n-pass")}}})
        );
    }

    let deleted = flyte(&["delete", "secret", "ghcr_creds"]);
    assert!(
        deleted.contains("Successfully deleted secret ghcr_creds"),
        "{deleted}"
    );
    let ghcr = flytesecret::naming::image_pull_name("flyte", "", "", "ghcr_creds");
    let (code, _, _) = http(
        server.kube_api.expect("the embedded engine's HTTP face"),
        "GET",
        &format!("/api/v1/namespaces/flyte/secrets/{ghcr}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(code, 404);

    // Trace logs (every layer, the Kubernetes client's included) never hold a credential.
    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(logged.contains("created secret"), "trace log not captured");
    for secret in [
        "hunter2-pass".to_owned(),
        b64("robot:hunter2-pass"),
        "tok3n-pass".to_owned(),
        b64("bot:tok3n-pass"),
    ] {
        assert!(!logged.contains(&secret), "a credential reached the logs");
    }
}
