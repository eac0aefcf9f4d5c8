//! The scope rule every RPC applies first (`validateScope`, upstream `secret_service.go`).

use crate::gostr;
use std::fmt;

/// A project-scoped request without a domain. Its `Display` is the exact Go message.
#[derive(Clone, PartialEq, Eq)]
pub struct ScopeError {
    project: String,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "project-scoped secrets must also specify a domain, got project={} domain=\"\"",
            gostr::quote(&self.project)
        )
    }
}

impl fmt::Debug for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeError({self})")
    }
}

impl std::error::Error for ScopeError {}

/// A project requires a domain; everything else passes. (The domain in the message is always
/// `""`, because the rule fires only when the domain is empty.)
pub fn check_scope(domain: &str, project: &str) -> Result<(), ScopeError> {
    if domain.is_empty() && !project.is_empty() {
        return Err(ScopeError {
            project: project.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_without_domain_is_rejected_with_go_quoting() {
        let err = check_scope("", "we\"ird\né\u{a0}").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"project-scoped secrets must also specify a domain, got project="we\"ird\né\u00a0" domain="""#
        );
    }

    #[test]
    fn every_other_combination_passes() {
        assert!(check_scope("", "").is_ok());
        assert!(check_scope("d", "").is_ok());
        assert!(check_scope("d", "p").is_ok());
    }
}
