//! The signing key of the account that sends transactions.
//!
//! A key is never taken from the command line, where other users of the machine can read it: it
//! comes from the environment variable [`PRIVATE_KEY_ENV`] (hex), or from an encrypted JSON keystore
//! (the Web3 Secret Storage format that geth, cast and most wallets write) with its password.
//! Errors never contain the key or the password.

use std::path::{Path, PathBuf};

use alloy::signers::local::{LocalSignerError, PrivateKeySigner};

/// The environment variable holding a private key, in hex.
pub const PRIVATE_KEY_ENV: &str = "INSITU_PRIVATE_KEY";

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The environment variable [`PRIVATE_KEY_ENV`].
    Env,
    /// Another environment variable (e.g. a service's own).
    Var(String),
    /// An encrypted JSON keystore file.
    Keystore {
        /// The keystore file.
        path: PathBuf,
        /// Its password.
        password: Password,
    },
}

/// The password of a keystore.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// Read from the first line of a file.
    File(PathBuf),
    /// Given (e.g. typed at a prompt).
    Given(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Given(_) => f.write_str("Given(..)"),
        }
    }
}

/// Why no key could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The environment variable is not set.
    #[error(
        "no key: set {var} to the private key (hex), or use an encrypted keystore (--keystore)"
    )]
    Missing {
        /// The variable.
        var: String,
    },
    /// The environment variable does not hold a private key.
    #[error("{var} is not a valid private key (expected 32 bytes in hex)")]
    InvalidKey {
        /// The variable.
        var: String,
    },
    /// The keystore file could not be read.
    #[error("cannot read the keystore {}: {reason}", path.display())]
    KeystoreUnreadable {
        /// The keystore.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The password does not open the keystore.
    #[error("wrong password for the keystore {}", path.display())]
    WrongPassword {
        /// The keystore.
        path: PathBuf,
    },
    /// A new keystore would replace a file.
    #[error("{} exists: a keystore is never overwritten", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A password too short to protect a key.
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// The new keystore could not be written.
    #[error("cannot write the keystore {}: {reason}", path.display())]
    KeystoreUnwritable {
        /// The keystore.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The password file could not be read.
    #[error("cannot read the password file {}: {source}", path.display())]
    PasswordFile {
        /// The password file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Shortest password [`new_keystore`] accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Creates an encrypted JSON keystore at `path` holding a new random key, sealed with `password`
/// (scrypt, as geth writes them); readable by its owner only. Returns the key.
///
/// # Errors
///
/// [`KeyError::Exists`] (nothing is overwritten), [`KeyError::WeakPassword`] or
/// [`KeyError::KeystoreUnwritable`].
pub fn new_keystore(path: &Path, password: &str) -> Result<PrivateKeySigner, KeyError> {
    if path.exists() {
        return Err(KeyError::Exists {
            path: path.to_path_buf(),
        });
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(KeyError::WeakPassword);
    }
    let unwritable = |reason: String| KeyError::KeystoreUnwritable {
        path: path.to_path_buf(),
        reason,
    };
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| unwritable("not a file name".to_owned()))?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // The file is created first, exclusively and owner-only, so no other process can slip one in
    // between the check and the write, and the key is never readable by others.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists {
            path: path.to_path_buf(),
        },
        _ => unwritable(error.to_string()),
    })?;
    let written =
        PrivateKeySigner::new_keystore(folder, &mut rand::thread_rng(), password, Some(name));
    match written {
        Ok((signer, _)) => Ok(signer),
        Err(error) => {
            let _ = std::fs::remove_file(path);
            Err(unwritable(error.to_string()))
        }
    }
}

/// Loads the key from `source`.
///
/// # Errors
///
/// See [`KeyError`].
pub fn load(source: &KeySource) -> Result<PrivateKeySigner, KeyError> {
    match source {
        KeySource::Env => from_var(PRIVATE_KEY_ENV),
        KeySource::Var(var) => from_var(var),
        KeySource::Keystore { path, password } => {
            let password = match password {
                Password::Given(password) => password.clone(),
                Password::File(file) => read_password_file(file)?,
            };
            open_keystore(path, &password)
        }
    }
}

fn from_var(var: &str) -> Result<PrivateKeySigner, KeyError> {
    let key = std::env::var(var).map_err(|_| KeyError::Missing {
        var: var.to_owned(),
    })?;
    key.trim().parse().map_err(|_| KeyError::InvalidKey {
        var: var.to_owned(),
    })
}

/// The password in the first line of `path` (without its line ending).
///
/// # Errors
///
/// [`KeyError::PasswordFile`].
pub fn read_password_file(path: &Path) -> Result<String, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// Decrypts the keystore at `path` with `password`.
///
/// # Errors
///
/// [`KeyError::WrongPassword`] or [`KeyError::KeystoreUnreadable`].
pub fn open_keystore(path: &Path, password: &str) -> Result<PrivateKeySigner, KeyError> {
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|error| match error {
        LocalSignerError::EthKeystoreError(eth_keystore::KeystoreError::MacMismatch) => {
            KeyError::WrongPassword {
                path: path.to_path_buf(),
            }
        }
        other => KeyError::KeystoreUnreadable {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}
