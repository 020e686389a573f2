//! Sealing secrets at rest with AES-256-GCM (invariant 11).
//!
//! The associated data binds each ciphertext to its secret's name, version and the key id, so a
//! row copied under another name or version (or relabelled with another key id) fails to open.

use std::fmt;

use aes_gcm::aead::{AeadInPlace as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore as _;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::master_key::MasterKey;
use crate::secret::SecretBytes;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AAD_DOMAIN: &[u8] = b"airlock/secret/v1\0";

/// A secret encrypted under a master key. Plain data: safe to store, log and print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    pub name: String,
    pub version: u32,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Errors from opening sealed data. They name the secret, never its contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    #[error(
        "secret {name:?} was sealed with master key {sealed_with:?} but the loaded master key is {have:?}: \
         this is not the master key this vault was sealed with"
    )]
    KeyMismatch {
        name: String,
        sealed_with: String,
        have: String,
    },
    #[error("secret {name:?} failed authentication: its ciphertext, nonce, name or version has been altered")]
    Tampered { name: String },
    #[error("audit signing key seed is {len} bytes; expected 32")]
    InvalidSigningSeed { len: usize },
}

/// Seals and opens secrets under one master key.
pub struct Vault {
    cipher: Aes256Gcm,
    key_id: String,
}

impl Vault {
    /// The master key is consumed (and zeroized); only the cipher's key schedule is kept.
    pub fn new(key: MasterKey) -> Self {
        let key_id = key.key_id();
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.bytes()));
        Self { cipher, key_id }
    }

    /// The id of the master key this vault seals with (safe to store and print).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypts `secret` with a fresh random nonce.
    ///
    /// # Panics
    ///
    /// Only if `secret` exceeds AES-GCM's 64 GiB message limit, which no credential approaches.
    pub fn seal(&self, name: &str, version: u32, secret: &SecretBytes) -> SealedSecret {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        // Room for the tag up front: growing the buffer would leave a plaintext copy behind.
        let mut buf = Zeroizing::new(Vec::with_capacity(secret.len() + TAG_LEN));
        buf.extend_from_slice(secret.expose());
        let aad = associated_data(name, version, &self.key_id);
        self.cipher
            .encrypt_in_place(Nonce::from_slice(&nonce), &aad, &mut *buf)
            .expect("AES-GCM only fails beyond its 64 GiB message limit");
        SealedSecret {
            name: name.to_owned(),
            version,
            key_id: self.key_id.clone(),
            nonce: nonce.to_vec(),
            // Encrypted in place: the buffer now holds ciphertext, which needs no zeroizing.
            ciphertext: std::mem::take(&mut *buf),
        }
    }

    /// Decrypts and authenticates `sealed`.
    pub fn open(&self, sealed: &SealedSecret) -> Result<SecretBytes, VaultError> {
        if sealed.key_id != self.key_id {
            return Err(VaultError::KeyMismatch {
                name: sealed.name.clone(),
                sealed_with: sealed.key_id.clone(),
                have: self.key_id.clone(),
            });
        }
        let tampered = || VaultError::Tampered {
            name: sealed.name.clone(),
        };
        if sealed.nonce.len() != NONCE_LEN {
            return Err(tampered());
        }
        let aad = associated_data(&sealed.name, sealed.version, &self.key_id);
        let mut buf = Zeroizing::new(sealed.ciphertext.clone());
        self.cipher
            .decrypt_in_place(Nonce::from_slice(&sealed.nonce), &aad, &mut *buf)
            .map_err(|_| tampered())?;
        Ok(SecretBytes::new(std::mem::take(&mut *buf)))
    }

    /// Re-encrypts `sealed` under `new` (master key rotation): same name and version, new key id,
    /// fresh nonce. The intermediate plaintext is zeroized when this returns.
    pub fn reseal(&self, new: &Vault, sealed: &SealedSecret) -> Result<SealedSecret, VaultError> {
        let plain = self.open(sealed)?;
        Ok(new.seal(&sealed.name, sealed.version, &plain))
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// `domain || name || 0 || version (big-endian) || key id`. The tail after the name has a fixed
/// length, so the encoding is unambiguous even if a name contains a NUL.
fn associated_data(name: &str, version: u32, key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + name.len() + 5 + key_id.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAINTEXT: &[u8] = b"ghp_DISTINCTIVE_PLAINTEXT_0123456789";

    fn vault() -> Vault {
        Vault::new(MasterKey::generate())
    }

    fn secret() -> SecretBytes {
        SecretBytes::new(PLAINTEXT.to_vec())
    }

    fn assert_no_plaintext(err: &VaultError) {
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("DISTINCTIVE"), "{shown}");
    }

    #[test]
    fn seal_open_round_trip() {
        let v = vault();
        let sealed = v.seal("github", 3, &secret());
        assert_eq!(
            (sealed.name.as_str(), sealed.version, sealed.key_id.as_str()),
            ("github", 3, v.key_id())
        );
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert_eq!(sealed.ciphertext.len(), PLAINTEXT.len() + TAG_LEN);
        assert!(!sealed.ciphertext.windows(11).any(|w| w == b"DISTINCTIVE"));
        assert_eq!(v.open(&sealed).unwrap().expose(), PLAINTEXT);
        assert!(!format!("{sealed:?} {v:?}").contains("DISTINCTIVE"));
        // Fresh nonce each time.
        assert_ne!(v.seal("github", 3, &secret()).nonce, sealed.nonce);
        let empty = v.seal("empty", 1, &SecretBytes::new(Vec::new()));
        assert!(v.open(&empty).unwrap().is_empty());
    }

    #[test]
    fn any_flipped_byte_is_tampered() {
        let v = vault();
        let sealed = v.seal("github", 1, &secret());
        for i in 0..sealed.ciphertext.len() {
            let mut bad = sealed.clone();
            bad.ciphertext[i] ^= 0x01;
            let err = v.open(&bad).unwrap_err();
            assert_eq!(err, VaultError::Tampered { name: "github".into() });
            assert_no_plaintext(&err);
        }
        for i in 0..sealed.nonce.len() {
            let mut bad = sealed.clone();
            bad.nonce[i] ^= 0x80;
            assert!(matches!(v.open(&bad), Err(VaultError::Tampered { .. })));
        }
        for (nonce, ciphertext) in [
            (vec![0; 11], sealed.ciphertext.clone()),
            (sealed.nonce.clone(), vec![0; 15]),
        ] {
            let bad = SealedSecret {
                nonce,
                ciphertext,
                ..sealed.clone()
            };
            assert!(matches!(v.open(&bad), Err(VaultError::Tampered { .. })));
        }
    }

    #[test]
    fn renamed_or_reversioned_rows_do_not_open() {
        let v = vault();
        let sealed = v.seal("github", 1, &secret());
        for (name, version) in [("gitlab", 1), ("github", 2), ("github\0", 1), ("githu", 1)] {
            let moved = SealedSecret {
                name: name.into(),
                version,
                ..sealed.clone()
            };
            let err = v.open(&moved).unwrap_err();
            assert_eq!(err, VaultError::Tampered { name: name.into() });
            assert_no_plaintext(&err);
        }
    }

    #[test]
    fn relabelled_key_id_does_not_open() {
        let old = vault();
        let new = vault();
        let relabelled = SealedSecret {
            key_id: new.key_id().to_owned(),
            ..old.seal("github", 1, &secret())
        };
        assert!(matches!(new.open(&relabelled), Err(VaultError::Tampered { .. })));
    }

    #[test]
    fn wrong_master_key_is_key_mismatch() {
        let a = vault();
        let b = vault();
        let sealed = a.seal("github", 1, &secret());
        let err = b.open(&sealed).unwrap_err();
        assert_eq!(
            err,
            VaultError::KeyMismatch {
                name: "github".into(),
                sealed_with: a.key_id().to_owned(),
                have: b.key_id().to_owned(),
            }
        );
        assert!(
            err.to_string()
                .contains("not the master key this vault was sealed with"),
            "{err}"
        );
        assert_no_plaintext(&err);
    }

    #[test]
    fn reseal_rotates_to_the_new_key() {
        let old = vault();
        let new = vault();
        let sealed = old.seal("github", 7, &secret());
        let rotated = old.reseal(&new, &sealed).unwrap();
        assert_eq!((rotated.name.as_str(), rotated.version), ("github", 7));
        assert_eq!(rotated.key_id, new.key_id());
        assert_ne!(rotated.nonce, sealed.nonce);
        assert_eq!(new.open(&rotated).unwrap().expose(), PLAINTEXT);
        assert!(matches!(old.open(&rotated), Err(VaultError::KeyMismatch { .. })));
        // Resealing with the wrong "old" vault fails rather than producing garbage.
        assert!(matches!(new.reseal(&old, &sealed), Err(VaultError::KeyMismatch { .. })));
    }

    #[test]
    fn same_key_text_opens_across_vault_instances() {
        let key = MasterKey::generate();
        let text = key.to_text();
        let sealed = Vault::new(key).seal("db", 1, &secret());
        let reopened = Vault::new(MasterKey::parse(&text).unwrap());
        assert_eq!(reopened.open(&sealed).unwrap().expose(), PLAINTEXT);
    }
}
