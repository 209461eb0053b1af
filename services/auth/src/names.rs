//! Naming rules shared by usernames and room names.

use crate::AuthError;

/// Longest username, in characters.
pub const MAX_USERNAME_LEN: usize = 32;

/// Checks `value` is 1..=`max` ASCII letters, digits, `_`, `-` or `.`; `what` names it in the error.
pub fn validate_name(what: &str, value: &str, max: usize) -> Result<(), AuthError> {
    if value.is_empty() {
        return Err(AuthError::InvalidName(format!("{what} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(AuthError::InvalidName(format!(
            "{what} must be at most {max} characters"
        )));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(AuthError::InvalidName(format!(
            "{what} may only contain letters, digits, '_', '-' and '.' (found {c:?})"
        )));
    }
    Ok(())
}

/// Checks a username (1-32 characters: letters, digits, `_`, `-`, `.`).
pub fn validate_username(name: &str) -> Result<(), AuthError> {
    validate_name("username", name, MAX_USERNAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Usernames follow the documented alphabet and length, and errors say what is wrong.
    #[test]
    fn username_rules() {
        for ok in ["a", "alice", "Bob_2", "x.y-z", &"a".repeat(32)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "with space",
            "émile",
            "<script>",
            "a/b",
            &"a".repeat(33),
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        let msg = validate_username("a b").unwrap_err().to_string();
        assert!(msg.contains("letters, digits"), "{msg}");
    }
}
