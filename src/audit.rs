//! The audit log (`secret.audit.path`): one JSON line per RPC, written (and flushed) before the
//! response is sent: time, caller (subject, groups, auth method), peer address, method, secret id,
//! outcome code and request id. Never a value: records are built from identifiers only.
//! A failed write is logged at error level and does not fail the RPC.

use crate::auth::Caller;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

/// The secret an RPC names (for ListSecrets: its filter, with an empty name).
#[derive(Clone, Copy, Debug)]
pub struct SecretRef<'a> {
    pub organization: &'a str,
    pub domain: &'a str,
    pub project: &'a str,
    pub name: &'a str,
}

/// One audited RPC.
pub struct AuditRecord<'a> {
    pub caller: &'a Caller,
    pub peer: Option<SocketAddr>,
    /// The full method name, e.g. `flyteidl2.secret.SecretService/GetSecret`.
    pub method: &'a str,
    pub secret: Option<SecretRef<'a>>,
    /// The Connect code name (`ok`, `permission_denied`, ...).
    pub code: &'a str,
    pub request_id: &'a str,
}

impl AuditRecord<'_> {
    /// The JSON line (without the newline).
    pub fn to_json(&self) -> String {
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let secret = self.secret.map(|s| {
            serde_json::json!({
                "organization": s.organization,
                "domain": s.domain,
                "project": s.project,
                "name": s.name,
            })
        });
        serde_json::json!({
            "time": time,
            "caller": {
                "subject": self.caller.subject,
                "groups": self.caller.groups,
                "method": self.caller.method.as_str(),
            },
            "peer": self.peer.map(|p| p.to_string()),
            "method": self.method,
            "secret": secret,
            "code": self.code,
            "requestId": self.request_id,
        })
        .to_string()
    }
}

/// Where audit lines go.
pub struct AuditLog {
    sink: Mutex<Box<dyn Write + Send>>,
    target: String,
}

impl AuditLog {
    /// `-` is stdout; anything else a file opened for appending (created when missing, 0600).
    pub fn open(path: &str) -> std::io::Result<AuditLog> {
        let sink: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            use std::os::unix::fs::OpenOptionsExt as _;
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(Path::new(path))?,
            )
        };
        Ok(AuditLog {
            sink: Mutex::new(sink),
            target: path.to_owned(),
        })
    }

    /// Writes one record as a line and flushes it; a failure is logged loudly.
    pub fn write(&self, record: &AuditRecord<'_>) {
        let mut line = record.to_json();
        line.push('\n');
        let mut sink = match self.sink.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = sink.write_all(line.as_bytes()).and_then(|()| sink.flush()) {
            tracing::error!(target_file = %self.target, method = record.method, request_id = record.request_id, error = %e, "AUDIT LOG WRITE FAILED: an RPC went unrecorded");
        }
    }
}
