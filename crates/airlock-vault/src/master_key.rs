//! The master key: the one AES-256 key every sealed secret is encrypted under.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub(crate) const KEY_LEN: usize = 32;
/// A key file holds ~45 bytes of text; anything far larger is not a key file.
const MAX_FILE_LEN: usize = 1024;

/// Errors loading, parsing or writing a master key. None of them echo the key text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterKeyError {
    #[error("master key is empty")]
    Empty,
    #[error("master key has 64 characters but is not valid hex")]
    InvalidHex,
    #[error("master key looks like hex but has {len} characters; expected 64")]
    HexLength { len: usize },
    #[error("master key is neither 64 hex characters nor valid standard base64")]
    InvalidBase64,
    #[error("master key is base64 of {len} bytes; expected 32")]
    Base64Length { len: usize },
    #[error("invalid master key in {path}: {reason}")]
    InvalidFile { path: PathBuf, reason: Box<MasterKeyError> },
    #[error("master key file {path} is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("master key file {path} is larger than {MAX_FILE_LEN} bytes; it is not a key file")]
    TooLarge { path: PathBuf },
    #[error("master key file {path} is accessible by group or others (mode {mode:03o}); run `chmod 600 {path}`")]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("master key file {path} already exists; refusing to overwrite it")]
    AlreadyExists { path: PathBuf },
    #[error("cannot access master key file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The 32-byte master key. Boxed so moves don't leave stray copies on the stack; zeroized on drop.
pub struct MasterKey(Box<Zeroizing<[u8; KEY_LEN]>>);

impl MasterKey {
    fn zeroed() -> Self {
        Self(Box::new(Zeroizing::new([0u8; KEY_LEN])))
    }

    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = Self::zeroed();
        OsRng.fill_bytes(&mut key.0[..]);
        key
    }

    /// Parses 64 hex characters or standard base64 of 32 bytes; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, MasterKeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MasterKeyError::Empty);
        }
        let mut key = Self::zeroed();
        // Base64 of 32 bytes is 44 characters and ends in '=', so it never looks like hex.
        if text.len() == 2 * KEY_LEN || text.bytes().all(|b| b.is_ascii_hexdigit()) {
            if text.len() != 2 * KEY_LEN {
                return Err(MasterKeyError::HexLength { len: text.len() });
            }
            hex::decode_to_slice(text, &mut key.0[..]).map_err(|_| MasterKeyError::InvalidHex)?;
        } else {
            let decoded = Zeroizing::new(STANDARD.decode(text).map_err(|_| MasterKeyError::InvalidBase64)?);
            if decoded.len() != KEY_LEN {
                return Err(MasterKeyError::Base64Length { len: decoded.len() });
            }
            key.0.copy_from_slice(&decoded);
        }
        Ok(key)
    }

    /// The key as standard base64, the form `write_new_file` stores.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.0[..]))
    }

    /// Reads a key file written by `write_new_file` (or by hand, in either accepted form).
    /// On unix a file that group or others can access is refused: the key would already be exposed.
    pub fn load_file(path: impl AsRef<Path>) -> Result<Self, MasterKeyError> {
        let path = path.as_ref();
        let io_err = |source| MasterKeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        // Checked on the open handle so the file can't be swapped between check and read.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = file.metadata().map_err(io_err)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(MasterKeyError::InsecurePermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        // Capacity is reserved up front so the buffer never reallocates and leaves a copy behind.
        let mut buf = Zeroizing::new(Vec::with_capacity(MAX_FILE_LEN + 1));
        file.take(MAX_FILE_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(io_err)?;
        if buf.len() > MAX_FILE_LEN {
            return Err(MasterKeyError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let text = std::str::from_utf8(&buf).map_err(|_| MasterKeyError::NotText {
            path: path.to_path_buf(),
        })?;
        Self::parse(text).map_err(|reason| MasterKeyError::InvalidFile {
            path: path.to_path_buf(),
            reason: Box::new(reason),
        })
    }

    /// Writes the key to a new file created with mode 0600; never overwrites an existing file.
    pub fn write_new_file(&self, path: impl AsRef<Path>) -> Result<(), MasterKeyError> {
        let path = path.as_ref();
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        // Set at creation, so there is no window in which the file is readable by others.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => MasterKeyError::AlreadyExists {
                path: path.to_path_buf(),
            },
            _ => MasterKeyError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let text = self.to_text();
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all());
        if let Err(source) = written {
            // We created it, so a half-written key file is ours to remove.
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(MasterKeyError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
        Ok(())
    }

    /// First 16 hex chars of SHA-256("airlock-key-id/v1" || key). Identifies the key without revealing it.
    pub fn key_id(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"airlock-key-id/v1");
        hasher.update(&self.0[..]);
        let digest = hasher.finalize();
        hex::encode(&digest[..8])
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("key_id", &self.key_id())
            .field("key", &format_args!("[redacted]"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_hex_and_base64_alike() {
        let from_hex = MasterKey::parse(&format!("  {HEX}\n")).unwrap();
        let from_b64 = MasterKey::parse(&from_hex.to_text()).unwrap();
        assert_eq!(from_hex.bytes(), from_b64.bytes());
        assert_eq!(from_hex.bytes()[31], 0x1f);
        assert_eq!(MasterKey::parse(&HEX.to_uppercase()).unwrap().bytes(), from_hex.bytes());
        assert_eq!(from_hex.key_id(), from_b64.key_id());
        assert_eq!(from_hex.key_id().len(), 16);
    }

    #[test]
    fn parse_errors_say_which_form_and_never_echo_the_value() {
        let bad_hex = format!("{}zz", &HEX[..62]);
        let cases = [
            ("", "empty"),
            ("   \n", "empty"),
            (bad_hex.as_str(), "not valid hex"),
            (&HEX[..40], "expected 64"),
            ("not!base64@all", "base64"),
            ("c2hvcnQ=", "base64 of 5 bytes"),
        ];
        for (input, expected) in cases {
            let err = MasterKey::parse(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input:?} -> {err}");
            if !input.trim().is_empty() {
                assert!(!err.contains(input.trim()), "error echoes input: {err}");
            }
        }
    }

    #[test]
    fn generated_keys_differ_and_debug_is_redacted() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_ne!(a.bytes(), b.bytes());
        assert_ne!(a.key_id(), b.key_id());
        let debug = format!("{a:?}");
        assert!(debug.contains("[redacted]") && debug.contains(&a.key_id()));
        assert!(!debug.contains(a.to_text().as_str()));
        assert!(!debug.contains(&hex::encode(a.bytes())));
    }

    #[test]
    fn key_file_round_trip_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::generate();
        key.write_new_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(MasterKey::load_file(&path).unwrap().bytes(), key.bytes());
        let err = MasterKey::generate().write_new_file(&path).unwrap_err();
        assert!(matches!(err, MasterKeyError::AlreadyExists { .. }), "{err}");
        assert_eq!(
            MasterKey::load_file(&path).unwrap().bytes(),
            key.bytes(),
            "existing key was overwritten"
        );
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, HEX).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = MasterKey::load_file(&path).unwrap_err();
            assert!(
                matches!(err, MasterKeyError::InsecurePermissions { .. }),
                "{mode:o}: {err}"
            );
            assert!(
                err.to_string().contains(&format!("chmod 600 {}", path.display())),
                "{err}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MasterKey::load_file(&path).is_ok());
    }

    #[test]
    fn bad_key_files_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.key");
        assert!(matches!(MasterKey::load_file(&missing), Err(MasterKeyError::Io { .. })));

        let path = dir.path().join("bad.key");
        MasterKey::parse(HEX).unwrap().write_new_file(&path).unwrap();
        std::fs::write(&path, "SECRET-LOOKING-GARBAGE!!").unwrap();
        let err = MasterKey::load_file(&path).unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("base64"),
            "{err}"
        );
        assert!(!err.contains("SECRET-LOOKING-GARBAGE"), "{err}");

        std::fs::write(&path, vec![b'a'; MAX_FILE_LEN + 1]).unwrap();
        assert!(matches!(
            MasterKey::load_file(&path),
            Err(MasterKeyError::TooLarge { .. })
        ));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            MasterKey::load_file(&path),
            Err(MasterKeyError::NotText { .. })
        ));
    }
}
