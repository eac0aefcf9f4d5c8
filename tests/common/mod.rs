//! Shared helpers for black-box tests: start the real binary, talk HTTP to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_flytesecret");

/// A running `flytesecret serve` on free ports, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub kube_api: Option<SocketAddr>,
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
}

fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    line.split_once(marker)?.1.trim().parse().ok()
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        Self::start_logging(extra, None)
    }

    /// Like [`Server::start`], with debug logs written to `log` (for checking what logs contain).
    pub fn start_logging(extra: &[&str], log: Option<&std::path::Path>) -> Server {
        Self::start_with(&[], extra, log.map(|p| (p, "trace")))
    }

    /// Like [`Server::start_logging`] (logs at `RUST_LOG` level `.1`), run through `sh -c` with
    /// `shell` first (e.g. `ulimit -n 64`).
    pub fn start_with(
        shell: &[&str],
        extra: &[&str],
        log: Option<(&std::path::Path, &str)>,
    ) -> Server {
        let dir = std::env::temp_dir().join(format!("flytesecret-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        let mut command = if shell.is_empty() {
            Command::new(BIN)
        } else {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{} && exec \"$0\" \"$@\"", shell.join(" && ")))
                .arg(BIN);
            c
        };
        let mut child = command
            .args([
                "serve",
                "--secret.server.port",
                "0",
                "--kube-api-listen",
                "127.0.0.1:0",
                "--write-kubeconfig",
            ])
            .arg(&kubeconfig)
            .args(["--secret.webhookURL", ""])
            .args(extra)
            .env("RUST_LOG", log.map_or("warn", |(_, level)| level))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(match log {
                Some((path, _)) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::inherit(),
            })
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut addr, mut kube_api) = (None, None);
        while addr.is_none() {
            let line = lines
                .next()
                .expect("server exited before it was serving")
                .unwrap();
            kube_api = kube_api.or_else(|| addr_after(&line, "embedded Kubernetes API on http://"));
            addr = addr_after(&line, "SecretService on http://");
        }
        std::thread::spawn(move || for _ in lines {});
        let server = Server {
            child,
            addr: addr.unwrap(),
            kube_api,
            kubeconfig,
            dir,
        };
        server.wait_ready();
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _, _)) = http(self.addr, "GET", "/readyz", &[], b"") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server never became ready");
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), "TERM");
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Status, lower-cased headers, body.
pub type HttpReply = (u16, Vec<(String, String)>, Vec<u8>);

/// A minimal blocking HTTP/1.1 request.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpReply> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok((status, headers, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// True when a `kubectl` binary answers; prints why not otherwise.
pub fn kubectl_available() -> bool {
    match Command::new("kubectl")
        .args(["version", "--client"])
        .output()
    {
        Ok(o) if o.status.success() => true,
        _ => {
            // CI installs kubectl (.ci/run); there, its absence is a failure, never a skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "no kubectl on PATH under CI"
            );
            eprintln!("skipping: no kubectl on PATH");
            false
        }
    }
}

/// A request identifier (organization left empty).
pub fn id(
    name: &str,
    domain: &str,
    project: &str,
) -> Option<flytesecret::proto::flyteidl2::secret::SecretIdentifier> {
    Some(flytesecret::proto::flyteidl2::secret::SecretIdentifier {
        name: name.into(),
        domain: domain.into(),
        project: project.into(),
        organization: String::new(),
    })
}

/// Where `ci/setup-clients` installed the third-party clients (`FLYTESECRET_CLIENTS_DIR`, else
/// `target/clients`); `None` (a printed skip) when they are missing, a failure under CI.
pub fn clients_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FLYTESECRET_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/clients"));
    if dir.join("venv-clients/bin/python").exists() {
        return Some(dir);
    }
    let why = format!(
        "third-party clients not installed in {} (run ci/setup-clients)",
        dir.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipping: {why}");
    None
}

/// Runs the `flyte` CLI of `clients` with `leading` arguments (endpoint or config) and `args`,
/// in a throwaway `home`; stdout and stderr together. The CLI's HTTP client may abort the
/// interpreter at exit after a successful run, so callers judge by the output.
pub fn flyte_output(
    clients: &std::path::Path,
    home: &std::path::Path,
    leading: &[&std::ffi::OsStr],
    args: &[&str],
) -> String {
    let out = Command::new(clients.join("venv-flyte/bin/flyte"))
        .args(leading)
        .args(args)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "250")
        .current_dir(home)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
