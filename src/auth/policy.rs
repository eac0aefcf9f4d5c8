//! Per-scope authorization: `secret.auth.policy`, a list of rules. A request on a scope is allowed
//! when some rule names the caller (its subject, or `group:<g>` for one of its groups), the verb,
//! and matches the scope's domain and project. No policy at all allows every authenticated caller.

use super::{Caller, Verb};
use serde::Deserialize;

/// One rule of `secret.auth.policy`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Users (`alice`, `system:serviceaccount:ns:name`, `cert:<CN>`) and groups (`group:<g>`).
    pub subjects: Vec<String>,
    /// `create`, `get`, `update`, `delete`, `list`, or `*`.
    pub verbs: Vec<String>,
    /// `*` any; `""` organization-wide secrets only; otherwise that domain.
    pub domains: Vec<String>,
    /// `*` any (including none); `""` no project; otherwise that project.
    pub projects: Vec<String>,
}

const VERBS: &[&str] = &["create", "get", "update", "delete", "list", "*"];

/// Parses the policy from YAML (or JSON) text: a list of rules; every verb must be known.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    let rules: Vec<Rule> = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    for (i, rule) in rules.iter().enumerate() {
        if let Some(v) = rule.verbs.iter().find(|v| !VERBS.contains(&v.as_str())) {
            return Err(format!(
                "rule {i}: unknown verb {v:?} (expected create, get, update, delete, list or \"*\")"
            ));
        }
        if rule.subjects.is_empty() {
            return Err(format!("rule {i}: subjects is empty"));
        }
    }
    Ok(rules)
}

/// What a request touches: one secret's scope, or a List filter (where an empty field means all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope<'a> {
    pub domain: &'a str,
    pub project: &'a str,
    /// True for ListSecrets: an empty domain or project in the filter means "every one",
    /// which only `"*"` covers.
    pub is_filter: bool,
}

fn covers(patterns: &[String], value: &str, is_filter: bool) -> bool {
    patterns
        .iter()
        .any(|p| p == "*" || (!(is_filter && value.is_empty()) && p == value))
}

impl Rule {
    fn names(&self, caller: &Caller) -> bool {
        self.subjects
            .iter()
            .any(|s| match s.strip_prefix("group:") {
                Some(group) => caller.groups.iter().any(|g| g == group),
                None => !caller.subject.is_empty() && *s == caller.subject,
            })
    }

    fn allows_verb(&self, verb: Verb) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb.as_str())
    }

    /// True when this rule allows `caller` to do `verb` on `scope`.
    pub fn allows(&self, caller: &Caller, verb: Verb, scope: &Scope<'_>) -> bool {
        self.names(caller)
            && self.allows_verb(verb)
            && covers(&self.domains, scope.domain, scope.is_filter)
            && covers(&self.projects, scope.project, scope.is_filter)
    }
}

/// The decision for a request: no policy allows everything; otherwise some rule must allow it.
pub fn allowed(policy: Option<&[Rule]>, caller: &Caller, verb: Verb, scope: &Scope<'_>) -> bool {
    match policy {
        None => true,
        Some(rules) => rules.iter().any(|r| r.allows(caller, verb, scope)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;

    fn caller(subject: &str, groups: &[&str]) -> Caller {
        Caller {
            subject: subject.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            method: AuthMethod::Jwt,
        }
    }

    const POLICY: &str = r#"
- subjects: [alice, "group:ml-team", "system:serviceaccount:flyte:flyte-binary"]
  verbs: [get, list]
  domains: [development]
  projects: ["*"]
- subjects: [bob]
  verbs: ["*"]
  domains: [""]
  projects: [""]
- subjects: [carol]
  verbs: [create, update]
  domains: ["*"]
  projects: [flytesnacks]
- subjects: [admin]
  verbs: ["*"]
  domains: ["*"]
  projects: ["*"]
"#;

    /// Every (caller, verb, scope) row: the expected decision.
    #[test]
    fn policy_table() {
        let rules = parse_rules(POLICY).unwrap();
        let one = |d: &'static str, p: &'static str| Scope {
            domain: d,
            project: p,
            is_filter: false,
        };
        let filter = |d: &'static str, p: &'static str| Scope {
            domain: d,
            project: p,
            is_filter: true,
        };
        use Verb::*;
        let table: Vec<(Caller, Verb, Scope<'_>, bool)> = vec![
            (caller("alice", &[]), Get, one("development", "p1"), true),
            (caller("alice", &[]), Get, one("development", ""), true),
            (caller("alice", &[]), Get, one("production", "p1"), false),
            (caller("alice", &[]), Get, one("", ""), false),
            (
                caller("alice", &[]),
                Create,
                one("development", "p1"),
                false,
            ),
            (
                caller("alice", &[]),
                Delete,
                one("development", "p1"),
                false,
            ),
            (
                caller("alice", &[]),
                List,
                filter("development", "p1"),
                true,
            ),
            // an empty project in the filter means all projects: "*" covers it
            (caller("alice", &[]), List, filter("development", ""), true),
            // an empty domain means all domains: only "*" covers it
            (caller("alice", &[]), List, filter("", "p1"), false),
            (
                caller("dave", &["ml-team"]),
                Get,
                one("development", "x"),
                true,
            ),
            (
                caller("dave", &["other"]),
                Get,
                one("development", "x"),
                false,
            ),
            // a group rule is not a user named "ml-team"
            (caller("ml-team", &[]), Get, one("development", "x"), false),
            (
                caller("system:serviceaccount:flyte:flyte-binary", &[]),
                List,
                filter("development", ""),
                true,
            ),
            (caller("bob", &[]), Create, one("", ""), true),
            (caller("bob", &[]), Delete, one("", ""), true),
            (caller("bob", &[]), Get, one("development", ""), false),
            (caller("bob", &[]), Get, one("", "p1"), false),
            // "" names organization-wide secrets, not "all" in a List filter
            (caller("bob", &[]), List, filter("", ""), false),
            (
                caller("carol", &[]),
                Create,
                one("production", "flytesnacks"),
                true,
            ),
            (caller("carol", &[]), Update, one("", "flytesnacks"), true),
            (
                caller("carol", &[]),
                Create,
                one("production", "other"),
                false,
            ),
            (caller("carol", &[]), Create, one("production", ""), false),
            (
                caller("carol", &[]),
                Get,
                one("production", "flytesnacks"),
                false,
            ),
            (caller("admin", &[]), List, filter("", ""), true),
            (caller("admin", &[]), Delete, one("", ""), true),
            (caller("", &[]), Get, one("development", "p"), false),
        ];
        for (c, verb, scope, want) in table {
            assert_eq!(
                allowed(Some(&rules), &c, verb, &scope),
                want,
                "{} {:?} {:?}",
                c.subject,
                verb,
                scope
            );
        }
        // no policy: any authenticated caller may do everything
        assert!(allowed(None, &caller("x", &[]), Delete, &one("a", "b")));
        // an empty policy allows nothing
        assert!(!allowed(
            Some(&[]),
            &caller("admin", &[]),
            Get,
            &one("", "")
        ));
    }

    #[test]
    fn unknown_verbs_and_fields_are_refused() {
        let e = parse_rules("- {subjects: [a], verbs: [read], domains: [x], projects: [y]}")
            .unwrap_err();
        assert!(e.contains("unknown verb \"read\""), "{e}");
        let e = parse_rules("- {subjects: [a], verbs: [get], domains: [x]}").unwrap_err();
        assert!(e.contains("projects"), "{e}");
        let e =
            parse_rules("- {subjects: [a], verbs: [get], domains: [x], projects: [y], extra: 1}")
                .unwrap_err();
        assert!(e.contains("extra"), "{e}");
        assert_eq!(
            parse_rules(r#"[{"subjects":["a"],"verbs":["*"],"domains":["*"],"projects":["*"]}]"#)
                .unwrap()
                .len(),
            1
        );
    }
}
