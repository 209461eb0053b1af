//! The Ed25519 signing key: loaded from a PKCS#8 PEM file or generated, and its public half
//! published as a JSON Web Key Set.

use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::AuthError;

/// DER prefix of a PKCS#8 v1 Ed25519 private key; the 32-byte seed follows (RFC 8410 §7).
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An Ed25519 private key and its public JWK (with `kid` = RFC 7638 SHA-256 thumbprint).
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    jwk: Jwk,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 PEM Ed25519 private key (`-----BEGIN PRIVATE KEY-----`), as written by
    /// `openssl genpkey -algorithm ed25519` or Helm's `genPrivateKey "ed25519"`.
    pub fn from_pem(pem: &[u8]) -> Result<Self, AuthError> {
        let encoding = EncodingKey::from_ed_pem(pem)
            .map_err(|e| AuthError::Key(format!("not an Ed25519 PKCS#8 PEM private key: {e}")))?;
        Self::from_encoding(encoding)
    }

    /// Reads and parses a PEM key file.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let pem = std::fs::read(path)
            .map_err(|e| AuthError::Key(format!("cannot read {}: {e}", path.display())))?;
        Self::from_pem(&pem)
    }

    /// A fresh random key (ephemeral: for dev and tests).
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        // A 48-byte PKCS#8 v1 Ed25519 DER built above is always a valid key.
        Self::from_encoding(EncodingKey::from_ed_der(&der)).expect("generated key is valid")
    }

    /// The key as PKCS#8 PEM (so tests can write a key file).
    pub fn generate_pem() -> String {
        let seed: [u8; 32] = rand::random();
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
    }

    fn from_encoding(encoding: EncodingKey) -> Result<Self, AuthError> {
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::EdDSA)
            .map_err(|e| AuthError::Key(format!("cannot derive the public key: {e}")))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| AuthError::Key(format!("cannot compute the key id: {e}")))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self { encoding, jwk, kid })
    }

    /// Key id (`kid` header of every token it signs).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key, for signing.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The public key as a one-key JWK Set.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
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

    /// Garbage and non-Ed25519 PEMs are refused with a key error.
    #[test]
    fn bad_pem_is_refused() {
        assert!(matches!(
            SigningKey::from_pem(b"nope"),
            Err(AuthError::Key(_))
        ));
    }
}
