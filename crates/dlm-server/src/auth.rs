//! API keys: `Authorization: Bearer <key>` on every endpoint but `/health` (and `/metrics`
//! or the playground page when the server makes them public). Keys are kept only as
//! SHA-256 digests and compared in constant time (every stored digest, every byte, no early
//! exit); a refusal is a 401 OpenAI error that never repeats what the client sent, and no
//! key is ever logged (their `Debug` forms are redacted).

use crate::error::{ApiError, ServerError};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// One API key as given on the command line (its `Debug` form hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl std::str::FromStr for ApiKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("an API key must not be empty".into());
        }
        Ok(ApiKey(s.to_owned()))
    }
}

/// Reads keys from a file: one per line, surrounding whitespace trimmed, blank lines and
/// lines starting with `#` ignored. A file that cannot be read or holds no key is an error.
pub fn read_key_file(path: &Path) -> Result<Vec<ApiKey>, ServerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServerError::Config(format!("cannot read the API key file {}: {e}", path.display())))?;
    let keys: Vec<ApiKey> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(ApiKey::new).collect();
    if keys.is_empty() {
        return Err(ServerError::Config(format!(
            "the API key file {} holds no key (one per line; blank lines and # comments are ignored)",
            path.display()
        )));
    }
    Ok(keys)
}

/// Who may call what.
#[derive(Clone, Default)]
pub struct Access {
    /// SHA-256 digests of the accepted keys; none: every endpoint is open.
    digests: Vec<[u8; 32]>,
    /// `GET /metrics` without a key.
    pub public_metrics: bool,
    /// `GET /` (the playground page) without a key; its API calls still need one.
    pub public_playground: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("keys", &self.digests.len())
            .field("public_metrics", &self.public_metrics)
            .field("public_playground", &self.public_playground)
            .finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Access {
    /// Open: no key needed anywhere.
    pub fn open() -> Access {
        Access::default()
    }

    /// Requires one of `keys` (duplicates are harmless).
    pub fn with_keys<'a>(keys: impl IntoIterator<Item = &'a ApiKey>) -> Access {
        Access { digests: keys.into_iter().map(|k| digest(k.expose())).collect(), ..Access::default() }
    }

    /// Whether any key is required.
    pub fn requires_key(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys, comparing its digest with every stored one
    /// in full (the time taken does not depend on which key, if any, matched, nor where
    /// they first differ).
    pub fn accepts(&self, presented: &str) -> bool {
        let d = digest(presented);
        let mut matched = 0u8;
        for stored in &self.digests {
            let diff = stored.iter().zip(&d).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            matched |= std::hint::black_box(u8::from(diff == 0));
        }
        matched == 1
    }

    /// Paths served without a key.
    fn is_public(&self, path: &str) -> bool {
        path == "/health" || (path == "/metrics" && self.public_metrics) || (path == "/" && self.public_playground)
    }
}

/// The middleware: 401 unless the path is public or the request carries a known key.
pub async fn require_key(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    if !access.requires_key() || access.is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    match presented {
        None => ApiError::unauthorized(
            "you did not provide an API key: send it in the Authorization header as `Authorization: Bearer KEY`",
        )
        .into_response(),
        Some(key) if access.accepts(key) => next.run(req).await,
        Some(_) => ApiError::unauthorized("incorrect API key provided").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly_and_hide_in_debug() {
        let a = Access::with_keys(&[ApiKey::new("sk-one"), ApiKey::new("sk-two")]);
        assert!(a.requires_key() && a.accepts("sk-one") && a.accepts("sk-two"));
        assert!(!a.accepts("sk-on") && !a.accepts("sk-one ") && !a.accepts("") && !a.accepts("SK-ONE"));
        assert!(!Access::open().requires_key());
        assert!(!format!("{a:?}").contains("sk-") && !format!("{:?}", ApiKey::new("sk-one")).contains("sk-"));
        assert!("  ".parse::<ApiKey>().is_err());
        assert_eq!(" k ".parse::<ApiKey>().unwrap(), ApiKey::new("k"));
    }

    #[test]
    fn key_files_skip_blanks_and_comments_and_must_hold_a_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let f = dir.join("keys");
        std::fs::write(&f, "# team keys\n\n  sk-a  \nsk-b\n").unwrap();
        assert_eq!(read_key_file(&f).unwrap(), vec![ApiKey::new("sk-a"), ApiKey::new("sk-b")]);
        std::fs::write(&f, "# nothing\n\n").unwrap();
        assert!(read_key_file(&f).unwrap_err().to_string().contains("holds no key"));
        assert!(read_key_file(&dir.join("missing")).unwrap_err().to_string().contains("cannot read"));
    }
}
