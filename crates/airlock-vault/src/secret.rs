//! `SecretBytes`: plaintext that is wiped from memory when dropped and never printed.

use std::fmt;

use zeroize::Zeroizing;

/// Plaintext secret bytes. Zeroized on drop (each clone separately); `Debug` and `Display`
/// print `[redacted]` so a stray `{:?}` in a log line cannot leak it.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; the allocation is zeroized when this value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The plaintext. Callers must not copy it into anything that outlives the request.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = SecretBytes::new(b"hunter2-DISTINCTIVE".to_vec());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), b"hunter2-DISTINCTIVE");
        assert_eq!(s.len(), 19);
        assert!(!s.is_empty());
        assert!(SecretBytes::new(Vec::new()).is_empty());
    }
}
