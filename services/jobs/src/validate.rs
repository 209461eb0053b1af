//! Pure rules of a submit that need no state: kind names, payload content types, and how
//! caller input is echoed in messages. The checks that need limits or the processor registry
//! are in [`crate::service`] (`validate_submit`).

use crate::error::JobError;

/// Longest accepted `content_type`, in bytes.
pub const MAX_CONTENT_TYPE: usize = 255;
/// Longest accepted kind name, in bytes (`[a-z0-9][a-z0-9._-]{0,63}`).
pub const MAX_KIND: usize = 64;
/// The kind of a submit that names none.
pub const DEFAULT_KIND: &str = "uppercase";

/// True for a well-formed kind name: `[a-z0-9][a-z0-9._-]{0,63}`.
pub fn is_valid_kind(kind: &str) -> bool {
    let b = kind.as_bytes();
    let lower_digit = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= MAX_KIND
        && lower_digit(&b[0])
        && b[1..]
            .iter()
            .all(|c| lower_digit(c) || matches!(c, b'.' | b'_' | b'-'))
}

/// The content type of a payload, normalised: `None` for JSON (empty, or `application/json`
/// in any case and with any parameters), else the trimmed MIME type. Errors say what is wrong.
pub fn payload_type(content_type: &str) -> Result<Option<String>, JobError> {
    let ct = content_type.trim();
    if ct.len() > MAX_CONTENT_TYPE {
        return Err(JobError::InvalidArgument(format!(
            "content_type is {} bytes; the limit is {MAX_CONTENT_TYPE}",
            ct.len()
        )));
    }
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if ct.is_empty() || essence.eq_ignore_ascii_case(pfc_queue::JSON) {
        return Ok(None);
    }
    // RFC 6838 restricted names: `type/subtype`, then optional `; name=value` parameters
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&c))
    };
    let mime = matches!(essence.split_once('/'), Some((t, sub)) if token(t) && token(sub));
    let printable = ct.bytes().all(|c| c.is_ascii_graphic() || c == b' ');
    if !mime || !printable {
        return Err(JobError::InvalidArgument(format!(
            "content_type {:?} is not a MIME type like \"application/octet-stream\" \
             (leave it empty for JSON)",
            truncate(ct, 80)
        )));
    }
    Ok(Some(ct.to_owned()))
}

/// Checks a queue name (`field` names it in the message): `[a-z0-9][a-z0-9._-]{0,63}`.
pub fn check_queue(field: &str, name: &str) -> Result<(), JobError> {
    if pfc_queue::is_valid_queue(name) {
        return Ok(());
    }
    Err(JobError::InvalidArgument(format!(
        "{field} {:?} is malformed: a queue name is 1 to {} characters of a-z, 0-9, '.', '_' \
         or '-', starting with a letter or digit (e.g. \"default\", \"mail.high\")",
        truncate(name, 80),
        pfc_queue::MAX_QUEUE
    )))
}

/// At most `n` characters of `s`, for echoing caller input in a message.
pub fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kinds match `[a-z0-9][a-z0-9._-]{0,63}` exactly.
    #[test]
    fn kind_names() {
        let longest = "a".repeat(64);
        for ok in [
            "a",
            "0",
            "resize",
            "images.resize-v2",
            "a_b",
            "9-lives",
            &longest,
        ] {
            assert!(is_valid_kind(ok), "{ok:?} should be valid");
        }
        let too_long = "a".repeat(65);
        for bad in [
            "", "-a", ".a", "_a", "Resize", "a b", "a/b", "é", "a\n", "a:b", &too_long,
        ] {
            assert!(!is_valid_kind(bad), "{bad:?} should be malformed");
        }
    }

    /// Empty and `application/json` (any case, with parameters) mean JSON; other MIME types
    /// pass through trimmed; anything else is refused with a message.
    #[test]
    fn content_types() {
        for json in [
            "",
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
        ] {
            assert_eq!(payload_type(json).unwrap(), None, "{json:?}");
        }
        for (given, kept) in [
            ("application/octet-stream", "application/octet-stream"),
            (" image/png ", "image/png"),
            ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
            ("application/vnd.pfc+json", "application/vnd.pfc+json"),
        ] {
            assert_eq!(payload_type(given).unwrap().as_deref(), Some(kept));
        }
        let long = format!("application/{}", "x".repeat(300));
        for bad in [
            "json",
            "/x",
            "x/",
            "a/b/c",
            "text/plain;\tq=1",
            "te\u{1}xt/plain",
            "tëxt/plain",
            long.as_str(),
        ] {
            let err = payload_type(bad).unwrap_err().to_string();
            assert!(err.starts_with("content_type"), "{bad:?}: {err}");
        }
    }

    /// Echoed input is cut at a character boundary.
    #[test]
    fn truncation() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééééé", 2), "éé…");
    }
}
