//! Verifying that an HTTP interaction comes from Discord: an Ed25519
//! signature (`X-Signature-Ed25519`, hex) over `X-Signature-Timestamp`
//! followed by the raw body, with the application's public key. Discord
//! does not bound the timestamp; we do, so a captured request cannot be
//! replayed later.

use ed25519_dalek::{Signature, VerifyingKey};

/// How far a request's timestamp may be from our clock, either way.
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("the signature is not 64 bytes of hex")]
    BadSignatureEncoding,
    #[error("the timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the timestamp is {0} s away from now (more than {MAX_SKEW_SECS} s)")]
    Stale(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("discord.public_key: {0}")]
pub struct BadPublicKey(pub String);

/// Checks interaction signatures against one application's public key.
#[derive(Clone, Debug)]
pub struct Verifier {
    key: VerifyingKey,
}

impl Verifier {
    /// `public_key_hex`: the 64 hex characters of the developer portal's "Public Key".
    pub fn new(public_key_hex: &str) -> Result<Self, BadPublicKey> {
        let bytes: [u8; 32] = hex::decode(public_key_hex.trim())
            .map_err(|e| BadPublicKey(format!("not hex: {e}")))?
            .try_into()
            .map_err(|_| BadPublicKey("expected 32 bytes (64 hex characters)".into()))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| BadPublicKey("not a valid Ed25519 public key".into()))?;
        Ok(Verifier { key })
    }

    /// The bare Ed25519 check: `signature` over `message`.
    pub fn verify_message(&self, signature: &[u8], message: &[u8]) -> Result<(), VerifyError> {
        let signature = Signature::from_slice(signature).map_err(|_| VerifyError::BadSignature)?;
        self.key
            .verify_strict(message, &signature)
            .map_err(|_| VerifyError::BadSignature)
    }

    /// Checks a request: the signature first (a forgery is reported as
    /// such), then that the signed timestamp is within [`MAX_SKEW_SECS`] of `now_unix`.
    pub fn verify(
        &self,
        signature_hex: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), VerifyError> {
        let signature_hex =
            signature_hex.ok_or(VerifyError::MissingHeader("X-Signature-Ed25519"))?;
        let timestamp = timestamp.ok_or(VerifyError::MissingHeader("X-Signature-Timestamp"))?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(signature_hex.trim(), &mut signature)
            .map_err(|_| VerifyError::BadSignatureEncoding)?;
        let mut message = Vec::with_capacity(timestamp.len() + body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(body);
        self.verify_message(&signature, &message)?;
        let at: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
        let skew = now_unix.saturating_sub(at);
        if skew.abs() > MAX_SKEW_SECS {
            return Err(VerifyError::Stale(skew));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[derive(serde::Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }
    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        secret_key: String,
        public_key: String,
        message_hex: String,
        signature: String,
    }

    fn vectors() -> Vec<Vector> {
        let text = std::fs::read_to_string("../shared/corpus/discord/ed25519_rfc8032_vectors.json")
            .expect("the RFC 8032 vectors in ../shared/corpus/discord/");
        serde_json::from_str::<Vectors>(&text).unwrap().vectors
    }

    #[test]
    fn rfc8032_vectors_verify_and_tampering_fails() {
        let vs = vectors();
        assert!(vs.len() >= 2);
        for v in vs {
            let verifier = Verifier::new(&v.public_key).unwrap();
            let message = hex::decode(&v.message_hex).unwrap();
            let signature = hex::decode(&v.signature).unwrap();
            verifier
                .verify_message(&signature, &message)
                .unwrap_or_else(|e| panic!("{}: {e}", v.name));
            // Our signing agrees with the vector (the key derivation is right).
            let secret: [u8; 32] = hex::decode(&v.secret_key).unwrap().try_into().unwrap();
            let signing = SigningKey::from_bytes(&secret);
            assert_eq!(
                hex::encode(signing.verifying_key().as_bytes()),
                v.public_key
            );
            assert_eq!(hex::encode(signing.sign(&message).to_bytes()), v.signature);
            // One flipped bit anywhere fails.
            let mut bad = signature.clone();
            bad[10] ^= 1;
            assert_eq!(
                verifier.verify_message(&bad, &message),
                Err(VerifyError::BadSignature)
            );
            let mut longer = message.clone();
            longer.push(0);
            assert_eq!(
                verifier.verify_message(&signature, &longer),
                Err(VerifyError::BadSignature)
            );
        }
    }

    #[test]
    fn requests_are_checked_over_timestamp_and_body_and_for_freshness() {
        let v = &vectors()[1];
        let secret: [u8; 32] = hex::decode(&v.secret_key).unwrap().try_into().unwrap();
        let key = SigningKey::from_bytes(&secret);
        let verifier = Verifier::new(&v.public_key).unwrap();
        let now = 1_700_000_000;
        let ts = now.to_string();
        let body = br#"{"type":1}"#;
        let sign = |ts: &str, body: &[u8]| {
            let mut m = ts.as_bytes().to_vec();
            m.extend_from_slice(body);
            hex::encode(key.sign(&m).to_bytes())
        };
        let sig = sign(&ts, body);
        assert_eq!(verifier.verify(Some(&sig), Some(&ts), body, now), Ok(()));
        // The signature binds the timestamp: another timestamp fails.
        let later = (now + 1).to_string();
        assert_eq!(
            verifier.verify(Some(&sig), Some(&later), body, now),
            Err(VerifyError::BadSignature)
        );
        // … and the body.
        assert_eq!(
            verifier.verify(Some(&sig), Some(&ts), br#"{"type":2}"#, now),
            Err(VerifyError::BadSignature)
        );
        // Well signed but old, or from the future.
        let old = (now - MAX_SKEW_SECS - 1).to_string();
        assert_eq!(
            verifier.verify(Some(&sign(&old, body)), Some(&old), body, now),
            Err(VerifyError::Stale(MAX_SKEW_SECS + 1))
        );
        let future = (now + MAX_SKEW_SECS + 5).to_string();
        assert!(matches!(
            verifier.verify(Some(&sign(&future, body)), Some(&future), body, now),
            Err(VerifyError::Stale(_))
        ));
        let edge = (now - MAX_SKEW_SECS).to_string();
        assert_eq!(
            verifier.verify(Some(&sign(&edge, body)), Some(&edge), body, now),
            Ok(())
        );
        // Well signed, but the timestamp is not a number.
        assert_eq!(
            verifier.verify(Some(&sign("soon", body)), Some("soon"), body, now),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verifier.verify(None, Some(&ts), body, now),
            Err(VerifyError::MissingHeader("X-Signature-Ed25519"))
        );
        assert_eq!(
            verifier.verify(Some(&sig), None, body, now),
            Err(VerifyError::MissingHeader("X-Signature-Timestamp"))
        );
        assert_eq!(
            verifier.verify(Some("zz"), Some(&ts), body, now),
            Err(VerifyError::BadSignatureEncoding)
        );
    }

    #[test]
    fn public_keys_are_validated() {
        assert!(Verifier::new("abc").is_err());
        assert!(Verifier::new(&"g".repeat(64)).is_err());
        assert!(Verifier::new(&"ab".repeat(16)).is_err());
        assert!(Verifier::new(&vectors()[0].public_key).is_ok());
    }
}
