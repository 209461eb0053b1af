//! The Ed25519 signing key: loaded from a PKCS#8 PEM file or generated, and its public half
//! published as a JSON Web Key (RFC 8037 `OKP` / `Ed25519`).
//!
//! Signing and verification use `ed25519-dalek` directly: pfc only ever signs with Ed25519,
//! so no general JOSE library (and none of the RSA code such libraries compile) is needed.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::AuthError;

/// A public key as a JSON Web Key: `{"kty":"OKP","crv":"Ed25519","x":..,"kid":..,"alg":"EdDSA","use":"sig"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP` for Ed25519 (RFC 8037).
    pub kty: String,
    /// Curve: `Ed25519`.
    #[serde(default)]
    pub crv: String,
    /// The 32-byte public key, base64url without padding.
    #[serde(default)]
    pub x: String,
    /// Key id: the RFC 7638 SHA-256 thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm: `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Use: `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// A JSON Web Key Set (RFC 7517 §5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// The RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the canonical JSON of the
/// required members (`crv`, `kty`, `x`, in that order), base64url.
pub fn thumbprint(x_b64: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x_b64}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// An Ed25519 private key and its public JWK (with `kid` = RFC 7638 SHA-256 thumbprint).
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 PEM Ed25519 private key (`-----BEGIN PRIVATE KEY-----`), as written by
    /// `openssl genpkey -algorithm ed25519` or Helm's `genPrivateKey "ed25519"`.
    pub fn from_pem(pem: &[u8]) -> Result<Self, AuthError> {
        let text = std::str::from_utf8(pem).map_err(|_| {
            AuthError::Key("not an Ed25519 PKCS#8 PEM private key: not text".into())
        })?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text.trim())
            .map_err(|e| AuthError::Key(format!("not an Ed25519 PKCS#8 PEM private key: {e}")))?;
        Ok(Self::from_dalek(key))
    }

    /// Reads and parses a PEM key file.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let pem = std::fs::read(path)
            .map_err(|e| AuthError::Key(format!("cannot read {}: {e}", path.display())))?;
        Self::from_pem(&pem).map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A fresh random key as PKCS#8 PEM (what a key file holds).
    pub fn generate_pem() -> String {
        Self::generate().to_pem()
    }

    /// The private key as PKCS#8 PEM, to write a key file (never log it).
    pub fn to_pem(&self) -> String {
        // Encoding a valid 32-byte Ed25519 key as PKCS#8 cannot fail.
        self.key
            .to_pkcs8_pem(Default::default())
            .expect("ed25519 key encodes as pkcs8")
            .to_string()
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> Self {
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: Some(thumbprint(&x)),
            x,
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
        };
        Self { key, jwk }
    }

    /// Key id (`kid` header of every token it signs).
    pub fn kid(&self) -> &str {
        self.jwk.kid.as_deref().unwrap_or_default()
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The public key as a one-key JWK Set.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// The 64-byte Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// A public key parsed from a JWK, for verification.
#[derive(Debug, Clone)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// Parses an `OKP`/`Ed25519` JWK; anything else is refused.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, AuthError> {
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            return Err(AuthError::Key(format!(
                "only Ed25519 (OKP) keys are accepted, not kty {:?} crv {:?}",
                jwk.kty, jwk.crv
            )));
        }
        if jwk.alg.as_deref().is_some_and(|a| a != "EdDSA") {
            return Err(AuthError::Key(format!(
                "key algorithm {:?} is not EdDSA",
                jwk.alg
            )));
        }
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&jwk.x)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| AuthError::Key("x is not a 32-byte base64url public key".into()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|e| AuthError::Key(format!("invalid Ed25519 public key: {e}")))?;
        Ok(Self(key))
    }

    /// True when `signature` is this key's strict Ed25519 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.0.verify_strict(message, &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated PEM parses back, and its JWKS is an Ed25519 OKP key with a stable kid.
    #[test]
    fn pem_round_trip_and_jwks_shape() {
        let pem = SigningKey::generate_pem();
        let a = SigningKey::from_pem(pem.as_bytes()).unwrap();
        let b = SigningKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(a.kid(), b.kid());
        let json = serde_json::to_value(a.jwks()).unwrap();
        let key = &json["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], a.kid());
        assert!(
            key.get("d").is_none(),
            "private part must never be published"
        );
    }

    /// The kid is the RFC 7638 thumbprint: RFC 8037 appendix A.3's example key gives its value.
    #[test]
    fn thumbprint_matches_rfc_8037() {
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    /// A key written by `openssl genpkey -algorithm ed25519` (PKCS#8 v1) loads, and signs
    /// what its JWK verifies.
    #[test]
    fn openssl_pem_loads_and_signs() {
        // RFC 8410 §10.3's example private key.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
        let vk = VerifyingKey::from_jwk(key.jwk()).unwrap();
        let sig = key.sign(b"hello");
        assert!(vk.verify(b"hello", &sig));
        assert!(!vk.verify(b"hellO", &sig));
        assert!(!vk.verify(b"hello", &sig[..63]));
    }

    /// Garbage PEMs and non-Ed25519 JWKs are refused with a key error.
    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(
            SigningKey::from_pem(b"nope"),
            Err(AuthError::Key(_))
        ));
        let mut rsa = SigningKey::generate().jwk().clone();
        rsa.kty = "RSA".into();
        assert!(VerifyingKey::from_jwk(&rsa).is_err());
        let mut short = SigningKey::generate().jwk().clone();
        short.x = "AAAA".into();
        assert!(VerifyingKey::from_jwk(&short).is_err());
    }
}
