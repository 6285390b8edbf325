//! Signed files: the project signs every global adapter it publishes, and the app refuses an
//! adapter whose signature does not verify with the project's public key.
//!
//! Format: the 8 bytes `AGSIGN01`, a 64-byte ed25519 signature of the payload, the payload.
//! The public key is a file of 64 hex digits (logical name `project_key`): an app version file
//! under BOINC (code-signed by BOINC along with the app), a file of the work-unit folder when
//! standalone.

use crate::error::{Error, Result};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::path::Path;

/// The first bytes of a signed file (format version 1).
pub const SIGNED_MAGIC: &[u8; 8] = b"AGSIGN01";
const SIGNATURE_LEN: usize = 64;

/// `payload` signed with `key`.
pub fn seal(payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNED_MAGIC.len() + SIGNATURE_LEN + payload.len());
    out.extend_from_slice(SIGNED_MAGIC);
    out.extend_from_slice(&key.sign(payload).to_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of signed `bytes` if its signature verifies with `key`; the message says why not.
pub fn open<'a>(bytes: &'a [u8], key: &VerifyingKey) -> std::result::Result<&'a [u8], String> {
    let Some(rest) = bytes.strip_prefix(SIGNED_MAGIC.as_slice()) else {
        return Err("not a signed file (no AGSIGN01 magic): refusing an unsigned adapter".into());
    };
    if rest.len() < SIGNATURE_LEN {
        return Err("truncated: shorter than its signature".into());
    }
    let (sig, payload) = rest.split_at(SIGNATURE_LEN);
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    key.verify(payload, &sig).map_err(|_| {
        "the signature does not verify with the project key: forged or corrupted".to_string()
    })?;
    Ok(payload)
}

/// The 32 bytes of a hex key file; `None` when it does not hold 64 hex digits.
fn read_key_bytes(path: &Path) -> Result<Option<[u8; 32]>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok()))
}

/// Reads a public key file (64 hex digits).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let bytes = read_key_bytes(path)?
        .ok_or_else(|| Error::adapter(path, "not a 32-byte hex public key"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| Error::adapter(path, format!("not an ed25519 public key: {e}")))
}

/// Reads a secret key file (64 hex digits).
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let bytes =
        read_key_bytes(path)?.ok_or_else(|| Error::format(path, "not a 32-byte hex secret key"))?;
    Ok(SigningKey::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_and_reject_tampering() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let sealed = seal(b"adapter bytes", &key);
        assert_eq!(
            open(&sealed, &key.verifying_key()).unwrap(),
            b"adapter bytes"
        );
        let mut forged = sealed.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert!(open(&forged, &key.verifying_key())
            .unwrap_err()
            .contains("does not verify"));
        let other = SigningKey::from_bytes(&[8u8; 32]);
        assert!(
            open(&sealed, &other.verifying_key()).is_err(),
            "another project's key"
        );
        assert!(open(b"adapter bytes", &key.verifying_key())
            .unwrap_err()
            .contains("unsigned"));
        assert!(open(&sealed[..40], &key.verifying_key())
            .unwrap_err()
            .contains("truncated"));
    }
}
