//! Static bearer tokens for the engine's HTTP face, in kube-apiserver's `--token-auth-file`
//! format (CSV: `token,user,uid[,"group1,group2"]`), and the TokenReview API that answers for
//! them (`POST /apis/authentication.k8s.io/v1/tokenreviews`), so TokenReview-based
//! authentication can be tested against the embedded engine.

use super::status::{Reply, json_reply};
use http::HeaderMap;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

pub const TOKENREVIEWS_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// One user of the token file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUser {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// The parsed token file. `Debug` shows user names only.
#[derive(Clone, Default)]
pub struct TokenFile {
    users: HashMap<String, TokenUser>,
    /// The first token of the file (written into kubeconfigs).
    first: Option<String>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.users.values().map(|u| u.name.as_str()).collect();
        names.sort_unstable();
        f.debug_struct("TokenFile").field("users", &names).finish()
    }
}

/// Splits one CSV record (RFC 4180 quoting, as Go's encoding/csv reads it).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => {
                quoted = true;
                at_start = false;
            }
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => {
                quoted = false;
                if chars.peek().is_some_and(|&n| n != ',') {
                    return Err("extraneous text after a quoted field".into());
                }
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            (_, c) => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(field);
    Ok(fields)
}

impl TokenFile {
    pub fn parse(text: &str) -> Result<TokenFile, String> {
        let mut file = TokenFile::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = csv_fields(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            if fields.len() < 3 {
                return Err(format!(
                    "line {}: expected token,user,uid[,\"groups\"], got {} fields",
                    n + 1,
                    fields.len()
                ));
            }
            let token = fields[0].trim().to_owned();
            if token.is_empty() {
                return Err(format!("line {}: empty token", n + 1));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let user = TokenUser {
                name: fields[1].trim().to_owned(),
                uid: fields[2].trim().to_owned(),
                groups,
            };
            if file.first.is_none() {
                file.first = Some(token.clone());
            }
            if file.users.insert(token, user).is_some() {
                return Err(format!("line {}: duplicate token", n + 1));
            }
        }
        Ok(file)
    }

    pub fn load(path: &Path) -> Result<TokenFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn first_token(&self) -> Option<&str> {
        self.first.as_deref()
    }

    pub fn user(&self, token: &str) -> Option<&TokenUser> {
        self.users.get(token)
    }

    /// The user of a request's bearer token, if it is listed.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<&TokenUser> {
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.user(token.trim())
    }
}

/// kube-apiserver's answer to a request without a valid token.
pub fn unauthorized() -> Reply {
    json_reply(
        401,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401
        }),
    )
}

/// `POST .../tokenreviews`: whether the token in the spec is one of the file's. The answer
/// echoes the requested audiences but never the token.
pub fn review(tokens: Option<&TokenFile>, body: &[u8]) -> Reply {
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(body) else {
        return super::status::ApiError::bad_request("the TokenReview body is not JSON")
            .into_reply();
    };
    let token = req
        .pointer("/spec/token")
        .and_then(|t| t.as_str())
        .unwrap_or("");
    let audiences = req
        .pointer("/spec/audiences")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let user = tokens.and_then(|t| t.user(token));
    let status = match user {
        Some(u) => json!({
            "authenticated": true,
            "user": {"username": u.name, "uid": u.uid, "groups": u.groups},
            "audiences": audiences,
        }),
        None => json!({"user": {}, "error": "invalid bearer token"}),
    };
    let mut spec = json!({});
    if !audiences.is_null() {
        spec["audiences"] = audiences;
    }
    json_reply(
        201,
        &json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kube_apiserver_token_files() {
        let f = TokenFile::parse(
            "# comment\nt1,alice,uid-1,\"system:masters,dev\"\n\nt2,bob,uid-2\n\"t,3\",carol,u3,ops\n",
        )
        .unwrap();
        assert_eq!(
            f.user("t1").unwrap(),
            &TokenUser {
                name: "alice".into(),
                uid: "uid-1".into(),
                groups: vec!["system:masters".into(), "dev".into()]
            }
        );
        assert_eq!(f.user("t2").unwrap().groups, Vec::<String>::new());
        assert_eq!(f.user("t,3").unwrap().groups, vec!["ops".to_owned()]);
        assert_eq!(f.first_token(), Some("t1"));
        assert!(!format!("{f:?}").contains("t1"));
        assert!(
            TokenFile::parse("t1,alice\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            TokenFile::parse("t1,a,1\nt1,b,2\n")
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(TokenFile::parse("\"t1,a,1\n").is_err());
    }
}
