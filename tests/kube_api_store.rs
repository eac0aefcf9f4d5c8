//! The durable store as files on a real disk, through the real binary: a full file system,
//! permissions under a permissive umask, a damaged log and its repair, encryption at rest.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{BIN, Server, http};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn temp(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flytesecret-{label}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `flytesecret kube-api` child, killed on drop.
struct KubeApi {
    child: Child,
    addr: SocketAddr,
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kube_api_command(dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["kube-api", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "warn");
    c
}

fn start(mut command: Command) -> KubeApi {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("kube-api exited at startup").unwrap();
    let addr = line
        .rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::spawn(move || for _ in lines {});
    KubeApi { child, addr }
}

fn create(addr: SocketAddr, name: &str, value: &str) -> (u16, serde_json::Value) {
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": value}});
    let (code, _, body) = http(
        addr,
        "POST",
        "/api/v1/namespaces/default/secrets",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    (code, serde_json::from_slice(&body).unwrap_or_default())
}

fn get(addr: SocketAddr, name: &str) -> u16 {
    http(
        addr,
        "GET",
        &format!("/api/v1/namespaces/default/secrets/{name}"),
        &[],
        b"",
    )
    .unwrap()
    .0
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root (as CI runs): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_writes_cleanly_and_keeps_every_acknowledged_one() {
    let root = temp("diskfull");
    let mount = Tmpfs::mount(&root.join("mnt"), "1m");
    let data = mount.0.join("data");
    // Room to give back later, so the test can show the store recovers without a restart.
    let filler = mount.0.join("filler");
    std::fs::write(&filler, vec![0u8; 256 * 1024]).unwrap();
    let value = "x".repeat(16 * 1024);
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    {
        let api = start(kube_api_command(&data, &[]));
        for i in 0..200 {
            let name = format!("s{i}");
            let (code, body) = create(api.addr, &name, &value);
            if code == 201 {
                acknowledged.push(name);
                continue;
            }
            assert_eq!(code, 500, "{body}");
            assert_eq!(body["reason"], "InternalError", "{body}");
            let message = body["message"].as_str().unwrap();
            assert!(message.contains("No space left on device"), "{message}");
            assert!(!message.contains(&value[..64]), "a value in an error");
            refused.push(name);
            break;
        }
        assert!(acknowledged.len() >= 5, "{} writes fit", acknowledged.len());
        assert_eq!(refused.len(), 1, "the disk never filled up");
        // Still full: writes keep failing cleanly, reads keep working.
        for i in 0..3 {
            let name = format!("again{i}");
            assert_eq!(create(api.addr, &name, &value).0, 500);
            refused.push(name);
        }
        assert_eq!(get(api.addr, &acknowledged[0]), 200);
        // Space comes back: the log was left whole, so writes simply succeed again (a partial
        // record left behind would have swallowed the first of these and, with more after it,
        // stopped the restart).
        std::fs::remove_file(&filler).unwrap();
        for i in 0..3 {
            let name = format!("after{i}");
            assert_eq!(create(api.addr, &name, "small").0, 201);
            acknowledged.push(name);
        }
        let _ = Command::new("kill")
            .args(["-9", &api.child.id().to_string()])
            .status();
    }
    let api = start(kube_api_command(&data, &[]));
    for name in &acknowledged {
        assert_eq!(get(api.addr, name), 200, "acknowledged {name} lost");
    }
    for name in &refused {
        assert_eq!(get(api.addr, name), 404, "refused {name} appeared");
    }
    drop(api);
    drop(mount);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn store_files_are_owner_only_whatever_the_umask() {
    let root = temp("umask");
    let data = root.join("a").join("data");
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"umask 000 && exec "$0" "$@""#)
        .arg(BIN)
        .args(["kube-api", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn");
    let api = start(sh);
    assert_eq!(create(api.addr, "s", "v").0, 201);
    drop(api);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    let mut files = 0;
    for e in std::fs::read_dir(&data).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        files += 1;
    }
    assert!(files > 0);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_damaged_record_stops_startup_and_repair_recovers_with_a_backup() {
    let root = temp("repair");
    let data = root.join("data");
    {
        let api = start(kube_api_command(&data, &[]));
        for name in ["a", "b", "c"] {
            assert_eq!(create(api.addr, name, name).0, 201);
        }
    }
    // Damage the last complete record, keeping its newline (so it is not a torn write).
    let log = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let n = bytes.len();
    bytes[n - 4] = b'#';
    std::fs::write(&log, &bytes).unwrap();
    let lines = bytes.iter().filter(|b| **b == b'\n').count();
    let out = kube_api_command(&data, &[]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let at = format!("{}:{lines}:", log.display());
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("--repair"), "{err}");
    let out = Command::new(BIN)
        .args(["kube-api", "--repair", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&at) && report.contains("1 line(s) dropped"),
        "{report}"
    );
    let backup = report
        .lines()
        .next()
        .unwrap()
        .rsplit(" written to ")
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        std::fs::read(Path::new(&backup).join(log.file_name().unwrap())).unwrap(),
        bytes
    );
    let api = start(kube_api_command(&data, &[]));
    assert_eq!(get(api.addr, "a"), 200);
    assert_eq!(get(api.addr, "b"), 200);
    drop(api);
    let _ = std::fs::remove_dir_all(root);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn dir_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            all.extend(std::fs::read(p).unwrap());
        }
    }
    all
}

#[test]
fn the_service_encrypts_its_embedded_store_with_the_configured_key() {
    let root = temp("encrypted");
    let data = root.join("data");
    let key = root.join("key");
    std::fs::write(&key, STANDARD.encode(rand::random::<[u8; 32]>())).unwrap();
    let value = "the-value-that-must-not-be-on-disk";
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--secret.embedded.encryption.keyFile",
        key.to_str().unwrap(),
    ];
    {
        let server = Server::start(&args);
        let (code, _, _) = http(
            server.addr,
            "POST",
            "/flyteidl2.secret.SecretService/CreateSecret",
            &[("content-type", "application/json")],
            json!({"id": {"name": "s", "project": "p", "domain": "d"}, "secretSpec": {"stringValue": value}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(code, 200);
        // The engine reads it back decrypted.
        let kube = server.kube_api.unwrap();
        let (code, _, body) =
            http(kube, "GET", "/api/v1/namespaces/flyte/secrets", &[], b"").unwrap();
        assert_eq!(code, 200);
        assert!(contains(&body, STANDARD.encode(value).as_bytes()));
    }
    let bytes = dir_bytes(&data);
    assert!(!bytes.is_empty());
    assert!(!contains(&bytes, value.as_bytes()));
    assert!(!contains(&bytes, STANDARD.encode(value).as_bytes()));
    // Another key is a clear startup error.
    let other = root.join("other");
    std::fs::write(&other, STANDARD.encode([9u8; 32])).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--secret.server.port", "0", "--data-dir"])
        .arg(&data)
        .arg("--secret.embedded.encryption.keyFile")
        .arg(&other)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong encryption key"), "{err}");
    let _ = std::fs::remove_dir_all(root);
}
