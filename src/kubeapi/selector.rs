//! Label and field selectors for LIST (docs/kubernetes-api.md §4.3, docs/kubernetes-api.md §4.4).

use super::object::{Namespace, Secret};
use super::validation::label_value_ok;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Exists,
    DoesNotExist,
    Equals(String),
    NotEquals(String),
    // Sets, as labels.Selector keeps them: a selector may list many values, and each object
    // listed or watched is matched against it.
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Gt(i64),
    Lt(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Comma,
    Eq,
    DoubleEq,
    NotEq,
    Not,
    In,
    NotIn,
    Open,
    Close,
    Gt,
    Lt,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::Comma => ",".into(),
            Token::Eq => "=".into(),
            Token::DoubleEq => "==".into(),
            Token::NotEq => "!=".into(),
            Token::Not => "!".into(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Gt => ">".into(),
            Token::Lt => "<".into(),
        }
    }
}

fn lex(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => {
                chars.next();
                out.push(Token::Comma);
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '>' => {
                chars.next();
                out.push(Token::Gt);
            }
            '<' => {
                chars.next();
                out.push(Token::Lt);
            }
            '=' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    out.push(Token::DoubleEq);
                } else {
                    out.push(Token::Eq);
                }
            }
            '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    out.push(Token::NotEq);
                } else {
                    out.push(Token::Not);
                }
            }
            _ => {
                let mut ident = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || ",()<>=!".contains(c) {
                        break;
                    }
                    ident.push(c);
                    chars.next();
                }
                out.push(match ident.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(ident),
                });
            }
        }
    }
    out
}

fn check_key(key: &str) -> Result<(), String> {
    let name = key.rsplit_once('/').map_or(key, |(_, n)| n);
    let ok = !name.is_empty() && name.len() <= 63 && label_value_ok(name);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key \"{key}\""
        ))
    }
}

fn check_value(key: &str, value: &str) -> Result<(), String> {
    if label_value_ok(value) {
        Ok(())
    } else {
        Err(format!(
            "unable to parse requirement: values[0][{key}]: Invalid value: {}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            crate::gostr::quote(value)
        ))
    }
}

impl LabelSelector {
    /// Parses the `labelSelector` grammar; errors carry the text the server returns with 400.
    pub fn parse(s: &str) -> Result<Self, String> {
        let tokens = lex(s);
        let mut reqs = Vec::new();
        let mut i = 0;
        let at = |i: usize| tokens.get(i);
        let found = |t: Option<&Token>, expected: &str| match t {
            Some(t) => format!("found '{}', expected: {expected}", t.text()),
            None => format!("found '', expected: {expected}"),
        };
        while i < tokens.len() {
            let req = if at(i) == Some(&Token::Not) {
                let Some(Token::Ident(key)) = at(i + 1) else {
                    return Err(found(at(i + 1), "identifier after '!'"));
                };
                check_key(key)?;
                i += 2;
                Requirement {
                    key: key.clone(),
                    op: Op::DoesNotExist,
                }
            } else {
                let Some(Token::Ident(key)) = at(i) else {
                    return Err(found(at(i), "!, identifier"));
                };
                check_key(key)?;
                i += 1;
                let op = match at(i) {
                    None | Some(Token::Comma) => Op::Exists,
                    Some(t @ (Token::Eq | Token::DoubleEq | Token::NotEq)) => {
                        let negate = *t == Token::NotEq;
                        i += 1;
                        let value = match at(i) {
                            Some(Token::Ident(v)) => {
                                i += 1;
                                v.clone()
                            }
                            None | Some(Token::Comma) => String::new(),
                            other => return Err(found(other, "identifier")),
                        };
                        check_value(key, &value)?;
                        if negate {
                            Op::NotEquals(value)
                        } else {
                            Op::Equals(value)
                        }
                    }
                    Some(t @ (Token::In | Token::NotIn)) => {
                        let not = *t == Token::NotIn;
                        i += 1;
                        if at(i) != Some(&Token::Open) {
                            return Err(found(at(i), "'('"));
                        }
                        i += 1;
                        let mut values = BTreeSet::new();
                        loop {
                            match at(i) {
                                Some(Token::Ident(v)) => {
                                    check_value(key, v)?;
                                    values.insert(v.clone());
                                    i += 1;
                                }
                                Some(Token::Close) => {
                                    i += 1;
                                    break;
                                }
                                Some(Token::Comma) => i += 1,
                                other => return Err(found(other, "',', ')' or identifier")),
                            }
                        }
                        if values.is_empty() {
                            return Err(
                                "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty"
                                    .into(),
                            );
                        }
                        if not {
                            Op::NotIn(values)
                        } else {
                            Op::In(values)
                        }
                    }
                    Some(t @ (Token::Gt | Token::Lt)) => {
                        let gt = *t == Token::Gt;
                        i += 1;
                        let Some(Token::Ident(v)) = at(i) else {
                            return Err(found(at(i), "identifier"));
                        };
                        i += 1;
                        let n: i64 = v.parse().map_err(|_| {
                            format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {v}")
                        })?;
                        if gt { Op::Gt(n) } else { Op::Lt(n) }
                    }
                    other => return Err(found(other, "=, !=, ==, in, notin, >, <")),
                };
                Requirement {
                    key: key.clone(),
                    op,
                }
            };
            reqs.push(req);
            match at(i) {
                None => break,
                Some(Token::Comma) => {
                    i += 1;
                    if i == tokens.len() {
                        return Err(found(None, "identifier"));
                    }
                }
                other => return Err(found(other, "','")),
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| {
            let v = labels.get(&r.key);
            match &r.op {
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
                Op::Equals(x) => v == Some(x),
                Op::NotEquals(x) => v != Some(x),
                Op::In(xs) => v.is_some_and(|v| xs.contains(v)),
                Op::NotIn(xs) => v.is_none_or(|v| !xs.contains(v)),
                Op::Gt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v > *n),
                Op::Lt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v < *n),
            }
        })
    }
}

/// A field selector over `metadata.name`, `metadata.namespace` and `type` (Secrets), or
/// `metadata.name` and `status.phase` (Namespaces).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

const SECRET_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "type"];
const NAMESPACE_FIELDS: &[&str] = &["metadata.name", "status.phase"];

impl FieldSelector {
    /// A selector over Secret fields.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_for(s, SECRET_FIELDS)
    }

    /// A selector over Namespace fields.
    pub fn parse_namespace(s: &str) -> Result<Self, String> {
        Self::parse_for(s, NAMESPACE_FIELDS)
    }

    fn parse_for(s: &str, supported: &[&str]) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, equal, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            let key = key.trim();
            if !supported.contains(&key) {
                return Err(format!("field label not supported: {key}"));
            }
            terms.push((key.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, s: &Secret) -> bool {
        self.matches_with(|key| match key {
            "metadata.name" => &s.meta.name,
            "metadata.namespace" => &s.meta.namespace,
            _ => &s.type_,
        })
    }

    pub fn matches_namespace(&self, ns: &Namespace) -> bool {
        self.matches_with(|key| match key {
            "metadata.name" => &ns.meta.name,
            _ => ns.phase.as_str(),
        })
    }

    fn matches_with<'a>(&self, field: impl Fn(&str) -> &'a str) -> bool {
        self.0
            .iter()
            .all(|(key, equal, value)| (field(key) == value) == *equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn set_based_and_equality_requirements() {
        let prod = labels(&[("env", "prod")]);
        let dev = labels(&[("env", "dev")]);
        let none = labels(&[]);
        let count = |sel: &str| {
            let s = LabelSelector::parse(sel).unwrap();
            [&prod, &dev, &none].iter().filter(|l| s.matches(l)).count()
        };
        assert_eq!(count("env in (prod,dev)"), 2);
        assert_eq!(count("env!=prod"), 2);
        assert_eq!(count("!env"), 1);
        assert_eq!(count("env"), 2);
        assert_eq!(count(""), 3);
        assert_eq!(count("app.flyte.org/managed=true,env=prod"), 0);
    }

    #[test]
    fn go_service_selector_shape() {
        let s = LabelSelector::parse("app.flyte.org/domain=development,app.flyte.org/managed=true")
            .unwrap();
        assert!(s.matches(&labels(&[
            ("app.flyte.org/managed", "true"),
            ("app.flyte.org/domain", "development")
        ])));
    }

    #[test]
    fn errors() {
        assert!(
            LabelSelector::parse("env in ()")
                .unwrap_err()
                .contains("values set can't be empty")
        );
        assert!(LabelSelector::parse("env=a b").is_err());
        assert_eq!(
            FieldSelector::parse("foo=bar").unwrap_err(),
            "field label not supported: foo"
        );
    }
}
