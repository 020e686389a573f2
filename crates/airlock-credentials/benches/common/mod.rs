//! What the re-signing benches share: real keys with a session token, and the placeholder key id.

use airlock_credentials::aws::AwsKeys;
use airlock_vault::SecretBytes;

pub const PLACEHOLDER: &str = "airlock-placeholder-aws";

pub fn keys() -> AwsKeys {
    let b = |s: &str| SecretBytes::new(s.as_bytes().to_vec());
    AwsKeys::new(
        &b("AKIAREALKEYID0000001"),
        &b("rEaLsEcReTkEy/0123456789+abcdefghijKLMNOP"),
        Some(&b("FwoGZXIvYXdzEREALSESSIONTOKEN0123456789abcdef")),
        PLACEHOLDER,
        "airlock-aws-secret-placeholder",
    )
    .expect("keys")
}
