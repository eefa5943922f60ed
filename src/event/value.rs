//! Lenient readers over a JSON payload: a wrong type or a missing key reads as `None`.
//!
//! Real GitLab payloads differ by version (absent vs `null` objects, numbers as strings, ids missing
//! in old payloads); these readers are how the rest of `event` stays forgiving without a
//! `deserialize_with` on every field.

use serde_json::Value;

/// Follows `path` through nested objects.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(key))
}

/// A non-empty string at `path`; numbers and booleans are turned into text.
pub fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    match at(v, path)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An unsigned integer at `path`; numeric strings are accepted.
pub fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    match at(v, path)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A number at `path` (integer or decimal); numeric strings are accepted.
pub fn f64_at(v: &Value, path: &[&str]) -> Option<f64> {
    match at(v, path)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// A boolean at `path`; `"true"`/`"false"` strings and 0/1 are accepted.
pub fn bool_at(v: &Value, path: &[&str]) -> Option<bool> {
    match at(v, path)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        _ => None,
    }
}

/// The array at `path`, or an empty slice when absent, `null` or not an array.
pub fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    match at(v, path) {
        Some(Value::Array(a)) => a,
        _ => &[],
    }
}

/// The object at `path`, if it is an object (not `null`).
pub fn obj_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    at(v, path).filter(|x| x.is_object())
}

/// A URL from a payload, made safe to reuse: only `http(s)`, with HTML-escaped `&amp;` undone.
pub fn url_at(v: &Value, path: &[&str]) -> Option<String> {
    str_at(v, path).and_then(|s| clean_url(&s))
}

/// Accepts only absolute `http`/`https` URLs without blanks; undoes `&amp;` escaping.
pub fn clean_url(raw: &str) -> Option<String> {
    let s = raw.trim().replace("&amp;", "&");
    let lower = s.to_ascii_lowercase();
    let ok_scheme = lower.starts_with("https://") || lower.starts_with("http://");
    (ok_scheme && !s.chars().any(char::is_whitespace) && s.len() > 8).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readers_are_forgiving() {
        let v = json!({"a": {"b": "7", "n": null, "e": "", "t": "true"}, "list": null});
        assert_eq!(u64_at(&v, &["a", "b"]), Some(7));
        assert_eq!(str_at(&v, &["a", "n"]), None);
        assert_eq!(str_at(&v, &["a", "e"]), None);
        assert_eq!(bool_at(&v, &["a", "t"]), Some(true));
        assert!(arr_at(&v, &["list"]).is_empty());
        assert!(obj_at(&v, &["a", "n"]).is_none());
    }

    #[test]
    fn urls_are_cleaned() {
        assert_eq!(
            clean_url("http://x.test/a?s=40&amp;d=identicon").as_deref(),
            Some("http://x.test/a?s=40&d=identicon")
        );
        assert_eq!(clean_url("javascript:alert(1)"), None);
        assert_eq!(clean_url("https://a b"), None);
    }
}
