//! The audit signing key (invariant 10): Ed25519, with its seed stored as a sealed secret.

use std::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::seal::VaultError;
use crate::secret::SecretBytes;

const SEED_LEN: usize = 32;

/// Signs audit checkpoints. `SigningKey` zeroizes itself on drop; `Debug` shows only the public key.
pub struct AuditSigner {
    key: SigningKey,
}

impl AuditSigner {
    /// A new key, and its seed for the caller to seal and store.
    pub fn generate() -> (AuditSigner, SecretBytes) {
        let key = SigningKey::generate(&mut OsRng);
        let seed = Zeroizing::new(key.to_bytes());
        (AuditSigner { key }, SecretBytes::new(seed.to_vec()))
    }

    /// Rebuilds the signer from a seed produced by `generate`.
    pub fn from_seed(seed: &SecretBytes) -> Result<AuditSigner, VaultError> {
        let mut bytes = Zeroizing::new([0u8; SEED_LEN]);
        if seed.len() != SEED_LEN {
            return Err(VaultError::InvalidSigningSeed { len: seed.len() });
        }
        bytes.copy_from_slice(seed.expose());
        Ok(AuditSigner {
            key: SigningKey::from_bytes(&bytes),
        })
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
}

impl fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSigner")
            .field("public_key", &hex::encode(self.public_key()))
            .field("seed", &format_args!("[redacted]"))
            .finish()
    }
}

/// Whether `sig` is a valid signature of `msg` by `public`. Strict verification: rejects weak
/// public keys and malleable (non-canonical) signatures; malformed input is simply `false`.
pub fn verify_signature(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(sig) else {
        return false;
    };
    key.verify_strict(msg, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MasterKey, Vault};

    #[test]
    fn sign_and_verify() {
        let (signer, _seed) = AuditSigner::generate();
        let public = signer.public_key();
        let sig = signer.sign(b"checkpoint 42");
        assert!(verify_signature(&public, b"checkpoint 42", &sig));
        assert!(!verify_signature(&public, b"checkpoint 43", &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!verify_signature(&public, b"checkpoint 42", &bad));
        assert!(!verify_signature(&public, b"checkpoint 42", &sig[..63]));
        assert!(!verify_signature(&public, b"checkpoint 42", &[0u8; 64]));
        let (other, _) = AuditSigner::generate();
        assert!(!verify_signature(&other.public_key(), b"checkpoint 42", &sig));
        assert!(!verify_signature(&[0u8; 32], b"checkpoint 42", &sig));
    }

    #[test]
    fn seed_survives_sealing() {
        let vault = Vault::new(MasterKey::generate());
        let (signer, seed) = AuditSigner::generate();
        let sealed = vault.seal("audit-signing-key", 1, &seed);
        let restored = AuditSigner::from_seed(&vault.open(&sealed).unwrap()).unwrap();
        assert_eq!(restored.public_key(), signer.public_key());
        assert!(verify_signature(&signer.public_key(), b"m", &restored.sign(b"m")));
    }

    #[test]
    fn bad_seed_and_debug() {
        let err = AuditSigner::from_seed(&SecretBytes::new(vec![7; 31])).unwrap_err();
        assert_eq!(err, VaultError::InvalidSigningSeed { len: 31 });
        let (signer, seed) = AuditSigner::generate();
        let debug = format!("{signer:?}");
        assert!(debug.contains("[redacted]") && debug.contains(&hex::encode(signer.public_key())));
        assert!(!debug.contains(&hex::encode(seed.expose())));
    }
}
