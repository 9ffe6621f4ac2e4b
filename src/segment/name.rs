//! Segment name rules.
//!
//! A name becomes one component of a path under `/dev/shm`, and the temporary file made
//! while creating it is `.<name>.<pid>.<counter>.tmp`. The rules keep both inside that
//! directory, keep segments apart from the hidden temporaries, and keep the temporary
//! name (at most 237 bytes) under the 255-byte file-name limit.

/// The longest name accepted, in bytes.
pub(crate) const MAX_LEN: usize = 200;

/// Checks `name` and says what is wrong with it.
pub(crate) fn validate(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("name is empty");
    }
    if name.len() > MAX_LEN {
        return Err("name is longer than 200 bytes");
    }
    if name.contains('/') {
        return Err("name contains '/'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("name contains a character outside [A-Za-z0-9._-]");
    }
    if name.starts_with('.') {
        return Err("name starts with '.'");
    }
    if name.contains("..") {
        return Err("name contains \"..\"");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        let longest = "a".repeat(MAX_LEN);
        for name in ["a", "ring-1", "A.b_c-D.9", "-x", "x.", longest.as_str()] {
            assert_eq!(validate(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn rejects_each_rule_with_its_reason() {
        let too_long = "a".repeat(MAX_LEN + 1);
        let cases = [
            ("", "name is empty"),
            (too_long.as_str(), "name is longer than 200 bytes"),
            ("a/b", "name contains '/'"),
            ("/abs", "name contains '/'"),
            ("a b", "name contains a character outside [A-Za-z0-9._-]"),
            (
                "caf\u{e9}",
                "name contains a character outside [A-Za-z0-9._-]",
            ),
            ("a\0b", "name contains a character outside [A-Za-z0-9._-]"),
            (".", "name starts with '.'"),
            ("..", "name starts with '.'"),
            (".hidden", "name starts with '.'"),
            ("a..b", "name contains \"..\""),
            ("a..", "name contains \"..\""),
        ];
        for (name, reason) in cases {
            assert_eq!(validate(name), Err(reason), "{name:?}");
        }
    }
}
