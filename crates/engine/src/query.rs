//! Query strings: filters as the Engine API wants them, and percent-encoding.

use std::collections::BTreeMap;

/// Engine API filters, such as `label=dockhand.clean.enable=true` or `service=web`.
///
/// Encoded as the docker CLI encodes them: `{"label":{"a=b":true}}`.
///
/// ```
/// use dockhand_engine::Filters;
///
/// let f = Filters::new().with("label", "dockhand.clean.enable=true").with("name", "web");
/// assert_eq!(f.to_json(), r#"{"label":{"dockhand.clean.enable=true":true},"name":{"web":true}}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    terms: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// No filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`; several values for one key match any of them.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.add(key, value);
        self
    }

    /// Adds `key=value` in place.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let values = self.terms.entry(key.into()).or_default();
        let value = value.into();
        if !values.contains(&value) {
            values.push(value);
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Each key with its values, by key: what an engine (or a stand-in for one) filters on.
    pub fn terms(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.terms.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The JSON form the API takes.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&str, BTreeMap<&str, bool>> = self
            .terms
            .iter()
            .map(|(k, vs)| (k.as_str(), vs.iter().map(|v| (v.as_str(), true)).collect()))
            .collect();
        serde_json::to_string(&map).unwrap_or_default()
    }
}

/// Builds `?a=b&c=d`, percent-encoding every value; empty when there are no pairs.
pub(crate) fn query(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(key);
        out.push('=');
        encode_into(value, &mut out);
    }
    out
}

/// A path segment naming one object (`kind`, such as `container`, and its ID or name, as a
/// user gave it): percent-encoded, and refused when empty, `.` or `..`, which would name
/// another path once a proxy or the engine normalizes it. One rule for every call.
pub(crate) fn segment(kind: &str, id: &str) -> Result<String, crate::Error> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(crate::Error::InvalidArgument {
            what: format!("{kind} {id:?}"),
            detail: "not an ID or name".to_owned(),
        });
    }
    let mut out = String::with_capacity(id.len());
    encode_into(id, &mut out);
    Ok(out)
}

fn encode_into(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_filters_and_values() {
        let f = Filters::new().with("label", "a=b c").with("label", "a=b c").with("id", "x");
        assert_eq!(f.to_json(), r#"{"id":{"x":true},"label":{"a=b c":true}}"#);
        assert_eq!(
            query(&[("filters", f.to_json()), ("status", "true".into())]),
            "?filters=%7B%22id%22%3A%7B%22x%22%3Atrue%7D%2C%22label%22%3A%7B%22a%3Db%20c%22%3Atrue%7D%7D&status=true"
        );
        assert_eq!(query(&[]), "");
        assert_eq!(segment("container", "../x y").unwrap(), "..%2Fx%20y");
        // Review finding 13: one rule for every object path.
        for bad in ["", ".", ".."] {
            let err = segment("volume", bad).unwrap_err().to_string();
            assert!(err.contains(&format!("volume {bad:?}")), "{err}");
        }
    }
}
