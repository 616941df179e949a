//! Short-lived access tokens, for players and scripts that cannot sign each request.
//!
//! A consumer trades one signed access request for a token (`POST /v1/access/token`), which then
//! stands in for the signature on `GET /v1/access/{agreement}` until it expires. A token names
//! one agreement and its consumer and carries its expiry; it is authenticated with an HMAC-SHA256
//! under a secret the keeper derives from its own key, so it survives restarts of the keeper and
//! is worth nothing to another keeper. It is never stored: the keeper checks it, then checks the
//! agreement against its store as for a signed request (settled, access window open).
//!
//! Format: base64url (no padding) of `agreement (32) ‖ chain id (8) ‖ consumer (20) ‖ expiry (8)
//! ‖ tag (32)`, numbers big-endian, the expiry in unix seconds.

use alloy::{
    primitives::{Address, B256, keccak256},
    signers::local::PrivateKeySigner,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of a decoded token.
const TOKEN_BYTES: usize = 32 + 8 + 20 + 8 + 32;

/// What a valid token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The agreement.
    pub agreement: B256,
    /// Its chain.
    pub chain_id: u64,
    /// Its consumer.
    pub consumer: Address,
    /// Unix time after which the token is refused.
    pub expires_at: u64,
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this keeper (malformed, altered, or another keeper's).
    #[error("the access token is not valid")]
    Invalid,
    /// Past its expiry.
    #[error("the access token expired at {0} (unix time): ask for a new one")]
    Expired(u64),
}

/// Issues and checks tokens.
pub struct Tokens {
    secret: [u8; 32],
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens of the keeper whose key is `key` (the secret is a one-way function of it).
    pub fn new(key: &PrivateKeySigner) -> Self {
        let mut material = b"insitu access tokens v1".to_vec();
        material.extend_from_slice(key.to_bytes().as_slice());
        Self {
            secret: keccak256(&material).0,
        }
    }

    fn tag(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(payload);
        mac
    }

    /// A token for `grant`.
    pub fn issue(&self, grant: Grant) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_BYTES);
        bytes.extend_from_slice(grant.agreement.as_slice());
        bytes.extend_from_slice(&grant.chain_id.to_be_bytes());
        bytes.extend_from_slice(grant.consumer.as_slice());
        bytes.extend_from_slice(&grant.expires_at.to_be_bytes());
        let tag = self.tag(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// What `token` grants, if it is one of this keeper's and has not expired at `now`.
    ///
    /// # Errors
    ///
    /// [`TokenError`].
    pub fn check(&self, token: &str, now: u64) -> Result<Grant, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| TokenError::Invalid)?;
        if bytes.len() != TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let (payload, tag) = bytes.split_at(TOKEN_BYTES - 32);
        // Constant-time comparison.
        self.tag(payload)
            .verify_slice(tag)
            .map_err(|_| TokenError::Invalid)?;
        let number = |range: std::ops::Range<usize>| {
            u64::from_be_bytes(payload[range].try_into().expect("8 bytes"))
        };
        let grant = Grant {
            agreement: B256::from_slice(&payload[..32]),
            chain_id: number(32..40),
            consumer: Address::from_slice(&payload[40..60]),
            expires_at: number(60..68),
        };
        if now > grant.expires_at {
            return Err(TokenError::Expired(grant.expires_at));
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            agreement: B256::repeat_byte(0xa9),
            chain_id: 31_337,
            consumer: Address::repeat_byte(0xc0),
            expires_at: 1_000,
        }
    }

    #[test]
    fn a_token_grants_what_it_was_issued_for_until_it_expires() {
        let tokens = Tokens::new(&PrivateKeySigner::random());
        let token = tokens.issue(grant());
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(tokens.check(&token, 999), Ok(grant()));
        assert_eq!(tokens.check(&token, 1_000), Ok(grant()));
        assert_eq!(tokens.check(&token, 1_001), Err(TokenError::Expired(1_000)));
    }

    #[test]
    fn altered_foreign_and_malformed_tokens_are_refused() {
        let key = PrivateKeySigner::random();
        let tokens = Tokens::new(&key);
        let token = tokens.issue(grant());
        // Another keeper's secret.
        assert_eq!(
            Tokens::new(&PrivateKeySigner::random()).check(&token, 0),
            Err(TokenError::Invalid)
        );
        // The same key after a restart.
        assert_eq!(Tokens::new(&key).check(&token, 0), Ok(grant()));
        // A later expiry written in: the tag no longer matches.
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[67] = 0xff;
        assert_eq!(
            tokens.check(&URL_SAFE_NO_PAD.encode(&bytes), 0),
            Err(TokenError::Invalid)
        );
        for bad in ["", "not a token", &token[..token.len() - 2], "AAAA"] {
            assert_eq!(tokens.check(bad, 0), Err(TokenError::Invalid), "{bad}");
        }
    }
}
