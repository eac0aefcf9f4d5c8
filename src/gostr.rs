//! Go's string conventions, reproduced exactly where the wire or the cluster depends on them.
//!
//! Three Go behaviours leak into observable bytes:
//! * `%q` (`strconv.Quote`) in the scope-rule error message,
//! * `strings.ToUpper` / `strings.ToLower` (per-code-point *simple* case mapping) in the names a task
//!   pod receives its secrets under,
//! * `encoding/json` string escaping (HTML-safe) in the webhook invalidation body.
//!
//! Rust's own equivalents differ (`str::to_uppercase` expands `ß` to `SS`, `{:?}` escapes
//! differently, serde_json does not escape `<`), so each is written out here against the Go rules.

use std::fmt::Write as _;
use std::time::Duration;
use unicode_general_category::{GeneralCategory, get_general_category};

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
pub fn is_print(c: char) -> bool {
    use GeneralCategory::*;
    if c == ' ' {
        return true;
    }
    matches!(
        get_general_category(c),
        UppercaseLetter
            | LowercaseLetter
            | TitlecaseLetter
            | ModifierLetter
            | OtherLetter
            | NonspacingMark
            | SpacingMark
            | EnclosingMark
            | DecimalNumber
            | LetterNumber
            | OtherNumber
            | ConnectorPunctuation
            | DashPunctuation
            | OpenPunctuation
            | ClosePunctuation
            | InitialPunctuation
            | FinalPunctuation
            | OtherPunctuation
            | MathSymbol
            | CurrencySymbol
            | ModifierSymbol
            | OtherSymbol
    )
}

/// Go's `strconv.Quote(s)`, which is what `fmt`'s `%q` prints for a string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.ToUpper` for one code point: the simple (never expanding) upper-case mapping.
///
/// Rust only exposes the full mapping. Where that is a single code point it equals the simple one;
/// where it expands, the simple mapping is either the code point itself (`ß`, `ﬀ`, `ŉ`, titlecase
/// Greek with prosgegrammeni, ...) or, for lower-case Greek with ypogegrammeni, the matching
/// titlecase letter (`ᾳ` → `ᾼ`), as UnicodeData.txt lists them.
pub fn simple_upper(c: char) -> char {
    let mut full = c.to_uppercase();
    let first = full.next().unwrap_or(c);
    if full.next().is_none() {
        return first;
    }
    let cp = c as u32;
    let mapped = match cp {
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => cp + 8,
        0x1FB3 | 0x1FC3 | 0x1FF3 => cp + 9,
        _ => cp,
    };
    char::from_u32(mapped).unwrap_or(c)
}

/// Go's `unicode.ToLower` for one code point: the simple lower-case mapping.
///
/// The only code point whose full lower-case mapping expands is `İ` (U+0130, to `i` + U+0307);
/// its simple mapping is plain `i`. Final-sigma context rules do not apply per code point.
pub fn simple_lower(c: char) -> char {
    if c == '\u{130}' {
        return 'i';
    }
    let mut full = c.to_lowercase();
    let first = full.next().unwrap_or(c);
    if full.next().is_none() { first } else { c }
}

/// Go's `strings.ToUpper`.
pub fn to_upper(s: &str) -> String {
    s.chars().map(simple_upper).collect()
}

/// Go's `strings.ToLower`.
pub fn to_lower(s: &str) -> String {
    s.chars().map(simple_lower).collect()
}

/// Appends `s` as a JSON string literal escaped the way Go's `encoding/json` does by default
/// (HTML-safe; Go 1.22 and later spell U+0008 and U+000C as `\b` and `\f`).
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `time.ParseDuration` for the forms configs use: `30s`, `1m30s`, `500ms`, `1.5h`, `0`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("time: invalid duration {}", quote(s));
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(err());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!("time: missing unit in duration {}", quote(s)));
            }
            u => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::gostr::quote(u),
                    quote(s)
                ));
            }
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    // Go's durations are int64 nanoseconds: anything longer (about 292 years) is invalid
    // there, and a sum too large for `Duration` (or infinite) is no duration here either.
    Duration::try_from_secs_f64(total)
        .ok()
        .filter(|d| d.as_nanos() <= i64::MAX as u128)
        .ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("flytesnacks", r#""flytesnacks""#)]
    #[case("we\"ird\né\u{a0}", r#""we\"ird\né\u00a0""#)]
    #[case("a\\b", r#""a\\b""#)]
    #[case("\u{7}\u{8}\u{c}\n\r\t\u{b}", r#""\a\b\f\n\r\t\v""#)]
    #[case("\u{0}\u{1f}\u{7f}", r#""\x00\x1f\x7f""#)]
    #[case("\u{ad}\u{200b}", r#""\u00ad\u200b""#)]
    #[case("\u{e0001}", r#""\U000e0001""#)]
    #[case("😀 中", r#""😀 中""#)]
    fn quote_matches_go(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(quote(input), expected);
    }

    #[rstest]
    #[case("my-secret", "MY-SECRET")]
    #[case("ß", "ß")]
    #[case("ﬀ", "ﬀ")]
    #[case("ᾳ", "ᾼ")]
    #[case("ᾀ", "ᾈ")]
    #[case("ᾈ", "ᾈ")]
    #[case("ǆ", "Ǆ")]
    #[case("ŉ", "ŉ")]
    #[case("straße_ı", "STRAßE_I")]
    fn to_upper_is_gos_simple_mapping(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(to_upper(input), expected);
    }

    #[rstest]
    #[case("MY-Secret", "my-secret")]
    #[case("İ", "i")]
    #[case("ΣΑΣ", "σασ")]
    #[case("ẞ", "ß")]
    fn to_lower_is_gos_simple_mapping(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(to_lower(input), expected);
    }

    #[rstest]
    #[case("a<b>&c", r#""a\u003cb\u003e\u0026c""#)]
    #[case("\u{2028}\u{2029}", r#""\u2028\u2029""#)]
    #[case("\u{1}\u{8}\u{c}\u{7f}é", "\"\\u0001\\b\\f\u{7f}é\"")]
    fn json_string_matches_go(#[case] input: &str, #[case] expected: &str) {
        let mut out = String::new();
        push_json_string(&mut out, input);
        assert_eq!(out, expected);
    }
}
