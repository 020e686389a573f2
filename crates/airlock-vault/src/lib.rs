//! airlock-vault: sealed secrets, the master key, the audit signing key, and scrubbing of
//! real secret values out of upstream responses (decoding their content coding first).
//!
//! This is one of the only places that sees plaintext credentials (invariants 2 and 11), so every
//! type that holds key material or plaintext zeroizes it on drop and redacts it in `Debug`.
#![forbid(unsafe_code)]

mod decode;
mod forms;
mod master_key;
mod scrub;
mod seal;
mod secret;
mod signer;
mod views;

pub use decode::{Coding, ContentDecoder, DecodeError};
pub use master_key::{MasterKey, MasterKeyError};
pub use scrub::Scrubber;
pub use seal::{SealedSecret, Vault, VaultError};
pub use secret::SecretBytes;
pub use signer::{AuditSigner, verify_signature};
