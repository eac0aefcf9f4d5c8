//! Crash safety of the durable embedded store: a `flytesecret kube-api` child is killed with
//! SIGKILL mid-write, again and again, while several clients write at once (their records
//! share group commits); every write it acknowledged is there after the restart,
//! and the store always opens.

mod common;

use common::{BIN, http};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start(dir: &std::path::Path) -> (std::process::Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["kube-api", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
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
    (child, addr)
}

fn create(addr: SocketAddr, name: &str) -> bool {
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{name}"}},"stringData":{{"k":"{name}"}}}}"#
    );
    matches!(
        http(
            addr,
            "POST",
            "/api/v1/namespaces/default/secrets",
            &[("content-type", "application/json")],
            body.as_bytes()
        ),
        Ok((201, _, _))
    )
}

/// Concurrent writers per round.
const WRITERS: u64 = 4;

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("flytesecret-crash-{}", uuid::Uuid::new_v4()));
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..6 {
        let (mut child, addr) = start(&dir);
        // Everything acknowledged so far is there.
        for name in &acknowledged {
            let (code, _, _) = http(
                addr,
                "GET",
                &format!("/api/v1/namespaces/default/secrets/{name}"),
                &[],
                b"",
            )
            .unwrap();
            assert_eq!(code, 200, "round {round}: acknowledged {name} lost");
        }
        // Write for a while from several threads at once (so their records share group
        // commits), then SIGKILL mid-stream.
        let kill_after = Duration::from_millis(80 + 40 * round);
        let pid = child.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let deadline = Instant::now() + Duration::from_secs(5);
                    let mut i = 0;
                    while Instant::now() < deadline {
                        i += 1;
                        let name = format!("r{round}-w{w}-{i}");
                        if !create(addr, &name) {
                            break;
                        }
                        acked.push(name);
                    }
                    acked
                })
            })
            .collect();
        for w in writers {
            acknowledged.extend(w.join().unwrap());
        }
        killer.join().unwrap();
        let _ = child.wait();
    }
    assert!(
        acknowledged.len() > 10,
        "too few writes to mean anything: {}",
        acknowledged.len()
    );
    let (mut child, addr) = start(&dir);
    let (code, _, body) =
        http(addr, "GET", "/api/v1/namespaces/default/secrets", &[], b"").unwrap();
    assert_eq!(code, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let stored = list["items"].as_array().unwrap().len();
    assert!(
        stored >= acknowledged.len(),
        "{stored} stored < {} acknowledged",
        acknowledged.len()
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}
