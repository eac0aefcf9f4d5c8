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
    let acknowledged = crash_rounds(&dir);
    all_there(&dir, &acknowledged);
    let _ = std::fs::remove_dir_all(dir);
}

/// The same, writing into a preallocated (zero-filled) segment: a record cut short by the kill
/// is followed by zeros, and the next run writes over it.
#[test]
fn acknowledged_writes_survive_sigkill_in_a_preallocated_segment() {
    let dir = std::env::temp_dir().join(format!("flytesecret-crash-{}", uuid::Uuid::new_v4()));
    // The store prepares its next segment when it opens; make that the current one, as a
    // rotation would.
    let (mut child, _) = start(&dir);
    let spare = dir.join("wal.spare");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !spare.exists() {
        assert!(Instant::now() < deadline, "no spare segment was prepared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let segment = dir.join("wal-0000000002.jsonl");
    std::fs::rename(&spare, &segment).unwrap();
    let size = std::fs::metadata(&segment).unwrap().len();
    assert!(size >= 1 << 20);
    let acknowledged = crash_rounds(&dir);
    all_there(&dir, &acknowledged);
    // Still the preallocated file: records, then zeros to its end.
    let bytes = std::fs::read(&segment).unwrap();
    assert_eq!(bytes.len() as u64, size);
    let end = bytes.iter().position(|b| *b == 0).unwrap();
    assert!(end > 0 && bytes[end..].iter().all(|b| *b == 0));
    let _ = std::fs::remove_dir_all(dir);
}

/// Rounds of concurrent writes, each ended by a SIGKILL mid-stream; returns every write that
/// was acknowledged (checking, at each restart, that the earlier ones are all there).
fn crash_rounds(dir: &std::path::Path) -> Vec<String> {
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..6 {
        let (mut child, addr) = start(dir);
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
    acknowledged
}

/// Every acknowledged write is there after a last restart.
fn all_there(dir: &std::path::Path, acknowledged: &[String]) {
    let (mut child, addr) = start(dir);
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
}
