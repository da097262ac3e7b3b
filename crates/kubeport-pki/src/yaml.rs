//! A block-style YAML writer whose output reads back identically under both YAML 1.2
//! (serde_yaml) and YAML 1.1 (the go-yaml behind kubectl's `sigs.k8s.io/yaml`).
//!
//! serde_yaml leaves strings such as `on`, `yes`, `n` or `12:30` unquoted; YAML 1.1 reads
//! those as booleans or numbers, so kubectl would fail on (or misread) a kubeconfig whose
//! namespace is `on` after kubeport rewrote it. Here every string that is not plainly a
//! string in both versions is double-quoted.

use std::fmt::Write as _;

use serde_yaml::{Mapping, Value};

/// Renders `value` as a YAML document (block style, two-space indentation, sequences
/// under a key not indented — the layout kubectl and kind write).
pub(crate) fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Mapping(m) if !m.is_empty() => mapping(&mut out, m, 0, false),
        Value::Sequence(s) if !s.is_empty() => sequence(&mut out, s, 0, false),
        other => {
            out.push_str(&flow(other));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, width: usize, already_positioned: bool) {
    if !already_positioned {
        out.extend(std::iter::repeat_n(' ', width));
    }
}

fn mapping(out: &mut String, map: &Mapping, width: usize, mut positioned: bool) {
    for (key, value) in map {
        indent(out, width, positioned);
        positioned = false;
        out.push_str(&flow(key));
        out.push(':');
        match value {
            Value::Mapping(m) if !m.is_empty() => {
                out.push('\n');
                mapping(out, m, width + 2, false);
            }
            Value::Sequence(s) if !s.is_empty() => {
                out.push('\n');
                sequence(out, s, width, false);
            }
            scalar => {
                out.push(' ');
                out.push_str(&flow(scalar));
                out.push('\n');
            }
        }
    }
}

fn sequence(out: &mut String, items: &[Value], width: usize, mut positioned: bool) {
    for item in items {
        indent(out, width, positioned);
        positioned = false;
        out.push_str("- ");
        match item {
            Value::Mapping(m) if !m.is_empty() => mapping(out, m, width + 2, true),
            Value::Sequence(s) if !s.is_empty() => sequence(out, s, width + 2, true),
            scalar => {
                out.push_str(&flow(scalar));
                out.push('\n');
            }
        }
    }
}

/// A value on one line: scalars, and flow collections (`{}`, `[a, b]`).
fn flow(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Mapping(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", flow(k), flow(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, flow(&tagged.value)),
    }
}

/// Words YAML 1.1 resolves to booleans or null (compared case-insensitively).
const YAML11_RESERVED_WORDS: &[&str] = &[
    "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~",
];

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    // Anything starting with a digit, sign or dot may be a number, date or sexagesimal
    // value in one YAML version or the other; indicators may not start a plain scalar.
    if !(first.is_ascii_alphabetic() || first == '/' || first == '_') {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=+@%".contains(c))
    {
        return false;
    }
    if s.ends_with(':') {
        return false;
    }
    !YAML11_RESERVED_WORDS
        .iter()
        .any(|w| w.eq_ignore_ascii_case(s))
}

/// A string scalar: plain when unambiguous, else double-quoted with JSON-style escapes
/// (valid in YAML 1.1 and 1.2 double-quoted scalars).
fn string(s: &str) -> String {
    if is_plain_safe(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Control characters, and characters YAML 1.1 treats as line breaks or a BOM.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) {
        let text = to_string(value);
        let back: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(&back, value, "{text}");
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "on",
            "Yes",
            "n",
            "OFF",
            "~",
            "null",
            "true",
            "",
            " lead",
            "trail ",
            "12:30",
            "0777",
            "1e3",
            "2024-01-01",
            "1_000",
            "+1",
            ".inf",
            "-",
            "- x",
            "a: b",
            "a #b",
            "x:",
            "[a]",
            "{a}",
            "*ref",
            "&anchor",
            "!tag",
            "%x",
            "@x",
            "`x",
            "'q'",
            "\"q\"",
            "|",
            ">",
            "?",
            "a,b",
        ] {
            assert!(string(s).starts_with('"'), "{s:?} must be quoted");
            round_trip(&Value::String(s.to_string()));
        }
    }

    #[test]
    fn ordinary_strings_stay_plain() {
        for s in [
            "kind-demo",
            "https://127.0.0.1:6443",
            "LS0tLS1CRUdJTiBDRVJU+/a==",
            "client.authentication.k8s.io/v1",
            "system:masters",
            "/home/u/.kube/config",
            "get-token",
        ] {
            assert_eq!(string(s), s);
        }
    }

    #[test]
    fn escapes_round_trip() {
        round_trip(&Value::String(
            "line1\nline2\t\"q\" \\ \u{1} \u{2028} é".into(),
        ));
    }

    #[test]
    fn nested_layout() {
        let value: Value = serde_yaml::from_str(
            "a: 1\nb:\n  c: [x, z]\n  d: {}\n  e: []\nf:\n- g: 1\n  h: [[1, 2], []]\n- - 1\n  - {k: v}\n- null\ni: 1.5\n",
        )
        .unwrap();
        let text = to_string(&value);
        assert_eq!(
            text,
            "a: 1\nb:\n  c:\n  - x\n  - z\n  d: {}\n  e: []\nf:\n- g: 1\n  h:\n  - - 1\n    - 2\n  - []\n- - 1\n  - k: v\n- null\ni: 1.5\n"
        );
        round_trip(&value);
    }
}
