//! How a configuration key is declared: the `settings!` macro turns one line per key (field,
//! type, canonical key, default, value parser) into the struct field, the schema entry and the
//! code that reads it, so the three cannot drift apart.

use super::{ConfigError, Source};
use std::collections::BTreeMap;

/// One configuration key: its canonical spelling (as in Go's YAML), its default, and the doc
/// comment of the field it fills (shown by `--help`).
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub doc: &'static [&'static str],
}

/// Every key's text and where it came from, after the layers (defaults, files, env, flags).
pub(crate) type Values = BTreeMap<&'static str, (String, Source)>;

/// Every key at its default.
pub(crate) fn defaults() -> Values {
    super::schema()
        .iter()
        .map(|k| (k.name, (k.default.to_owned(), Source::Default)))
        .collect()
}

/// The error for `key`'s current value, naming where that value came from.
pub(crate) fn invalid(values: &Values, key: &str, reason: impl Into<String>) -> ConfigError {
    let (value, origin) = &values[key];
    ConfigError::Invalid {
        origin: origin.clone(),
        key: key.to_owned(),
        value: value.clone(),
        reason: reason.into(),
    }
}

/// Declares a group of settings. Each field is either a key,
/// `name: Type = "secret.key", "default", parser(args...);` (read by `value::parser`), or a
/// nested group, `name: Group;` (another `settings!` struct). Generates the struct, its keys in
/// declaration order, its reader, and a `Default` holding the declared defaults.
macro_rules! settings {
    (@key $out:ident, $ty:ty, [$($doc:literal),*]) => {
        <$ty>::keys($out)
    };
    (@key $out:ident, $ty:ty, [$($doc:literal),*], $key:literal, $default:literal) => {
        $out.push($crate::config::settings::Key { name: $key, default: $default, doc: &[$($doc),*] })
    };
    (@read $values:ident, $ty:ty) => {
        <$ty>::read($values)?
    };
    (@read $values:ident, $ty:ty, $key:literal, $parser:ident $(, $arg:expr)*) => {
        $crate::config::value::$parser($values, $key $(, $arg)*)?
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty $(= $key:literal, $default:literal, $parser:ident $(($($arg:expr),*))?)?;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            $($(#[doc = $doc])* pub $field: $ty,)*
        }

        impl $name {
            /// Appends this group's keys, nested groups' included, in declaration order.
            pub(crate) fn keys(out: &mut Vec<$crate::config::settings::Key>) {
                $(settings!(@key out, $ty, [$($doc),*] $(, $key, $default)?);)*
            }

            /// Reads every field from the layered values, each with its own parser.
            pub(crate) fn read(
                values: &$crate::config::settings::Values,
            ) -> Result<Self, $crate::config::ConfigError> {
                Ok($name {
                    $($field: settings!(@read values, $ty $(, $key, $parser $(, $($arg),*)?)?),)*
                })
            }
        }

        impl Default for $name {
            /// The declared defaults.
            fn default() -> Self {
                Self::read(&$crate::config::settings::defaults())
                    .expect("the declared defaults are valid")
            }
        }
    };
}

pub(crate) use settings;
