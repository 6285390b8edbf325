//! Encryption at rest: the project's archive of global adapter versions and server optimizer
//! state is sealed with XChaCha20-Poly1305 under `keys/storage.key`, a key that never leaves
//! the server.
//!
//! Why at rest, and not on the way to volunteers: a volunteer's app must read the adapter it
//! trains, so any key that decrypts it would have to ship beside the app, and BOINC's download
//! server hands every file, app versions included, to whoever asks for its URL. Encrypting work
//! units would only pretend. What sealing does buy: the history of versions and the optimizer's
//! moments (which reveal where training is heading) can be backed up or copied off the server
//! without the keys and stay unreadable, and a stored file that was altered or put under another
//! name does not open. A work unit carries the version's signed plaintext, written by
//! `make-work`; the app verifies the signature.
//!
//! Format: the 8 bytes `AGSEAL01`, a random 24-byte nonce, then the ciphertext and its 16-byte
//! tag. The associated data is the file's role (`tiny/adapter/v000003`), binding a sealed file
//! to the one name it was written for.

use anyhow::{bail, Context, Result};
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::path::Path;

/// The first bytes of a sealed file (format version 1).
pub const SEALED_MAGIC: &[u8; 8] = b"AGSEAL01";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The project's storage key.
pub struct StorageKey(XChaCha20Poly1305);

impl StorageKey {
    /// Reads a key file of 64 hex digits.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("{}: not a 32-byte hex storage key", path.display()))?;
        Ok(Self(XChaCha20Poly1305::new(&bytes.into())))
    }

    /// `plaintext` sealed for the role `role` (encrypted in place in the output buffer).
    pub fn seal(&self, role: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
        let head = SEALED_MAGIC.len() + NONCE_LEN;
        let mut out = Vec::with_capacity(head + plaintext.len() + TAG_LEN);
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .0
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                role.as_bytes(),
                &mut out[head..],
            )
            .map_err(|_| anyhow::anyhow!("sealing {role} failed"))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// The plaintext of sealed `bytes` read from `path`, which must have been sealed for `role`.
    pub fn open(&self, path: &Path, role: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        let Some(rest) = bytes.strip_prefix(SEALED_MAGIC.as_slice()) else {
            bail!("{}: not a sealed file (no AGSEAL01 magic)", path.display());
        };
        if rest.len() < NONCE_LEN + TAG_LEN {
            bail!(
                "{}: truncated: shorter than its nonce and tag",
                path.display()
            );
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: role.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "{}: does not open as {role} with the project's storage key: \
                     corrupted, altered, renamed, or sealed under another key",
                    path.display()
                )
            })
    }

    /// Reads and opens the sealed file at `path`.
    pub fn read_file(&self, path: &Path, role: &str) -> Result<Vec<u8>> {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        self.open(path, role, &bytes)
    }

    /// Seals `plaintext` and writes it to `path` atomically.
    pub fn write_file(&self, path: &Path, role: &str, plaintext: &[u8]) -> Result<()> {
        Ok(aginet::format::files::write_atomic(
            path,
            &self.seal(role, plaintext)?,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> StorageKey {
        StorageKey(XChaCha20Poly1305::new(&[byte; 32].into()))
    }

    #[test]
    fn sealed_bytes_open_only_with_their_key_and_role() {
        let p = Path::new("v1");
        let sealed = key(1).seal("tiny/adapter/v000001", b"weights").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"weights"));
        assert_eq!(
            key(1).open(p, "tiny/adapter/v000001", &sealed).unwrap(),
            b"weights"
        );
        let renamed = key(1).open(p, "tiny/adapter/v000002", &sealed);
        assert!(format!("{:#}", renamed.unwrap_err()).contains("renamed"));
        assert!(key(2).open(p, "tiny/adapter/v000001", &sealed).is_err());
        let mut altered = sealed.clone();
        altered[40] ^= 1;
        assert!(key(1).open(p, "tiny/adapter/v000001", &altered).is_err());
        let truncated = key(1).open(p, "tiny/adapter/v000001", &sealed[..30]);
        assert!(format!("{:#}", truncated.unwrap_err()).contains("truncated"));
    }

    #[test]
    fn two_seals_of_the_same_bytes_differ() {
        let k = key(3);
        assert_ne!(k.seal("r", b"x").unwrap(), k.seal("r", b"x").unwrap());
    }
}
