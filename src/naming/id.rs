//! Encoding and decoding of secret ids (`EncodeSecretName`, `EncodeSecretNamePrefix`,
//! `DecodeSecretName` in upstream `utils.go`).

use std::fmt;

const SEPARATOR: &str = "__";

/// The four components of a secret id, borrowed. `org`, `domain` and `project` may be empty
/// (broader scopes); `name` is the user's secret name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SecretId<'a> {
    pub org: &'a str,
    pub domain: &'a str,
    pub project: &'a str,
    pub name: &'a str,
}

impl<'a> SecretId<'a> {
    pub fn new(org: &'a str, domain: &'a str, project: &'a str, name: &'a str) -> Self {
        SecretId {
            org,
            domain,
            project,
            name,
        }
    }

    /// `EncodeSecretName`: `u__org__‹org›__domain__‹domain›__project__‹project›__key__‹name›`,
    /// a plain concatenation with no escaping. Empty components stay empty.
    pub fn encode(&self) -> EncodedId {
        const FIXED: usize = "u__org____domain____project____key__".len();
        let len = FIXED + self.org.len() + self.domain.len() + self.project.len() + self.name.len();
        let mut s = String::with_capacity(len);
        s.push_str("u__org__");
        s.push_str(self.org);
        s.push_str("__domain__");
        s.push_str(self.domain);
        s.push_str("__project__");
        s.push_str(self.project);
        s.push_str("__key__");
        s.push_str(self.name);
        debug_assert_eq!(s.len(), len);
        EncodedId(s)
    }

    /// True when `decode(encode(self)) == self`: none of org, domain, project contains `__` or
    /// ends with `_` (docs/go-service.md §3.4, second round-trip law). The name is unrestricted.
    pub fn round_trips(&self) -> bool {
        [self.org, self.domain, self.project]
            .iter()
            .all(|c| component_round_trips(c))
    }
}

/// True when an org, domain or project component survives encoding and decoding: it contains
/// no `__` and does not end with `_` (the name is unrestricted).
pub fn component_round_trips(component: &str) -> bool {
    !component.contains(SEPARATOR) && !component.ends_with('_')
}

/// An encoded secret id: the data key inside the Kubernetes Secret. Only [`SecretId::encode`]
/// makes one, so an `EncodedId` is never an arbitrary string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EncodedId(String);

impl EncodedId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The Kubernetes object name of the Secret that holds this id (`EncodeK8sSecretName`).
    pub fn object_name(&self) -> super::ObjectName {
        super::object_name(&self.0)
    }
}

impl AsRef<str> for EncodedId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EncodedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EncodedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncodedId({:?})", self.0)
    }
}

/// `EncodeSecretNamePrefix`: the most specific non-empty scope wins. A project without a domain
/// still yields the project form (`u__org__‹org›__domain____project__‹p›`).
pub fn encode_prefix(org: &str, domain: &str, project: &str) -> String {
    if !project.is_empty() {
        format!("u__org__{org}__domain__{domain}__project__{project}")
    } else if !domain.is_empty() {
        format!("u__org__{org}__domain__{domain}")
    } else {
        format!("u__org__{org}")
    }
}

/// Why a string is not an encoded id. The texts are upstream's, verbatim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("secret name has an invalid format: not enough parts")]
    NotEnoughParts,
    #[error("secret name has an invalid format: unexpected parts")]
    UnexpectedParts,
}

/// `DecodeSecretName`: split on `__` left to right (Go `strings.Split`), require at least nine
/// parts with the words `u`, `org`, `domain`, `project`, `key` in the even positions, and take
/// everything after the eighth separator as the name. Borrows from `encoded`; allocates nothing.
///
/// Encoding is not injective (docs/go-service.md §3.5): for components containing `__` or ending in `_`, the
/// result is an error or a different id than the one encoded.
pub fn decode(encoded: &str) -> Result<SecretId<'_>, DecodeError> {
    let mut parts = encoded.splitn(9, SEPARATOR);
    let mut fixed = [""; 8];
    for slot in &mut fixed {
        *slot = parts.next().ok_or(DecodeError::NotEnoughParts)?;
    }
    let name = parts.next().ok_or(DecodeError::NotEnoughParts)?;
    let [
        u,
        org_word,
        org,
        domain_word,
        domain,
        project_word,
        project,
        key_word,
    ] = fixed;
    if u != "u"
        || org_word != "org"
        || domain_word != "domain"
        || project_word != "project"
        || key_word != "key"
    {
        return Err(DecodeError::UnexpectedParts);
    }
    Ok(SecretId {
        org,
        domain,
        project,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(("flyte", "development", "flytesnacks", "my-secret"), "u__org__flyte__domain__development__project__flytesnacks__key__my-secret")]
    #[case(("flyte", "development", "", "my-secret"), "u__org__flyte__domain__development__project____key__my-secret")]
    #[case(("flyte", "", "", "my-secret"), "u__org__flyte__domain____project____key__my-secret")]
    #[case(("flyte", "", "", ""), "u__org__flyte__domain____project____key__")]
    #[case(("", "", "", ""), "u__org____domain____project____key__")]
    fn encode_concatenates_without_escaping(
        #[case] (o, d, p, n): (&str, &str, &str, &str),
        #[case] expected: &str,
    ) {
        assert_eq!(SecretId::new(o, d, p, n).encode().as_str(), expected);
    }

    #[rstest]
    #[case(
        "u__org__flyte__domain____project____key",
        Err(DecodeError::NotEnoughParts)
    )]
    #[case("", Err(DecodeError::NotEnoughParts))]
    #[case(
        "v__org__flyte__domain____project____key__n",
        Err(DecodeError::UnexpectedParts)
    )]
    #[case(
        "u__org__flyte__domain__d__project__p___key__n",
        Err(DecodeError::UnexpectedParts)
    )]
    #[case(
        "u__org__flyte__domain__d__project__p__KEY__n",
        Err(DecodeError::UnexpectedParts)
    )]
    #[case(
        "u__org__flyte__domain__d__project__p__key___x",
        Ok(SecretId::new("flyte", "d", "p", "_x"))
    )]
    #[case(
        "u__org__t__domain__d__project__p__key__s__",
        Ok(SecretId::new("t", "d", "p", "s__"))
    )]
    #[case(
        "u__org__flyte__domain__d__project__x__key__key__n",
        Ok(SecretId::new("flyte", "d", "x", "key__n"))
    )]
    #[case(
        "u__org__flyte__domain____project____key__",
        Ok(SecretId::new("flyte", "", "", ""))
    )]
    fn decode_follows_go_split(
        #[case] input: &str,
        #[case] expected: Result<SecretId<'static>, DecodeError>,
    ) {
        assert_eq!(decode(input), expected);
    }

    #[test]
    fn decode_error_texts_are_upstreams() {
        assert_eq!(
            DecodeError::NotEnoughParts.to_string(),
            "secret name has an invalid format: not enough parts"
        );
        assert_eq!(
            DecodeError::UnexpectedParts.to_string(),
            "secret name has an invalid format: unexpected parts"
        );
    }

    #[rstest]
    #[case(("flyte", "development", "flytesnacks"), "u__org__flyte__domain__development__project__flytesnacks")]
    #[case(("flyte", "development", ""), "u__org__flyte__domain__development")]
    #[case(("flyte", "", ""), "u__org__flyte")]
    #[case(("flyte", "", "p"), "u__org__flyte__domain____project__p")]
    #[case(("", "", ""), "u__org__")]
    fn prefix_picks_most_specific_scope(
        #[case] (o, d, p): (&str, &str, &str),
        #[case] expected: &str,
    ) {
        assert_eq!(encode_prefix(o, d, p), expected);
    }
}
