//! Encryption at rest: AES-256-GCM over each stored record with a fresh random 96-bit nonce,
//! the way Kubernetes' `aesgcm` EncryptionConfiguration provider seals objects in etcd. The
//! additional authenticated data binds a sealed record to its place (log record of one
//! resourceVersion, or snapshot entry), so records cannot be swapped or replayed elsewhere.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io;
use std::path::Path;

const NONCE_LEN: usize = 12;

/// The data key. `Debug` shows only its id.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    id: String,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cipher(key id {})", self.id)
    }
}

impl Cipher {
    /// Reads a key file: 32 random bytes in base64 (`head -c 32 /dev/urandom | base64`).
    /// Errors name the file, never its content.
    pub fn from_key_file(path: &Path) -> io::Result<Cipher> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("reading the encryption key file {}: {e}", path.display()),
            )
        })?;
        let bad = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "encryption key file {}: {why}; expected 32 random bytes in base64 (e.g. `head -c 32 /dev/urandom | base64`)",
                    path.display()
                ),
            )
        };
        let key = STANDARD
            .decode(text.trim())
            .map_err(|_| bad("not valid base64".into()))?;
        if key.len() != 32 {
            return Err(bad(format!("decodes to {} bytes", key.len())));
        }
        Ok(Cipher::new(&key))
    }

    pub fn new(key: &[u8]) -> Cipher {
        let aead = Aes256Gcm::new_from_slice(key).expect("a 32-byte key");
        let digest = Sha256::digest([b"flytesecret-key-id:".as_slice(), key].concat());
        let id = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Cipher { aead, id }
    }

    /// A short public identifier of the key (a hash prefix), stored with each sealed record so
    /// a wrong key is told apart from a damaged record.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `base64(nonce || ciphertext || tag)`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    /// Opens what [`Cipher::seal`] produced; `None` when it was altered or sealed elsewhere.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.aead
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_with_fresh_nonces_and_bound_aad() {
        let c = Cipher::new(&[7u8; 32]);
        let a = c.seal(b"hunter2", b"rv:5");
        let b = c.seal(b"hunter2", b"rv:5");
        assert_ne!(a, b, "a fresh nonce per record");
        assert_eq!(c.open(&a, b"rv:5").unwrap(), b"hunter2");
        assert!(c.open(&a, b"rv:6").is_none(), "bound to its place");
        assert!(Cipher::new(&[8u8; 32]).open(&a, b"rv:5").is_none());
        assert_ne!(Cipher::new(&[8u8; 32]).id(), c.id());
        assert!(!format!("{c:?}").contains("0707"));
    }

    #[test]
    fn key_files_must_hold_32_bytes_of_base64() {
        let dir = std::env::temp_dir().join(format!("flytesecret-key-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, format!("{}\n", STANDARD.encode([1u8; 32]))).unwrap();
        assert!(Cipher::from_key_file(&path).is_ok());
        std::fs::write(&path, STANDARD.encode([1u8; 16])).unwrap();
        let e = Cipher::from_key_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("decodes to 16 bytes") && e.contains("key"),
            "{e}"
        );
        std::fs::write(&path, "not base64!").unwrap();
        let e = Cipher::from_key_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("not valid base64") && !e.contains("not base64!"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
