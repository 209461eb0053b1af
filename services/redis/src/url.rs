//! Redis URLs as operators write them: one or more `redis://` seeds (comma-separated for a
//! cluster), with the password given apart (a flag, an environment variable or a mounted
//! Secret file) so it never has to be part of a URL in a manifest.

use std::path::Path;

/// Reads a password file: its content without the trailing line break that editors and
/// `echo` add (a Kubernetes Secret mounted as a file has none). Errors name the file.
pub fn read_password_file(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("failed to read password file {}: {e}", path.display()),
        )
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Puts `password` into a `redis://` URL (replacing any password already there).
pub fn with_password(url: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let user = auth
        .map(|a| a.split(':').next().unwrap_or(""))
        .unwrap_or("");
    let enc: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{scheme}://{user}:{enc}@{host}")
}

/// `with_password` applied to every seed of a comma-separated list.
pub fn with_password_all(urls: &str, password: &str) -> String {
    urls.split(',')
        .map(|u| with_password(u.trim(), password))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_goes_into_every_seed() {
        assert_eq!(
            with_password_all("redis://a:1, redis://b:2", "p@ss"),
            "redis://:p%40ss@a:1,redis://:p%40ss@b:2"
        );
    }
}
