//! The crate's error type. Each variant says what kind of mistake it is, so the binding layer
//! can raise the Python exception a user expects (FileNotFoundError, KeyError, ValueError...).

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory that should exist does not.
    #[error("{0}")]
    NotFound(String),
    /// A tensor the model needs is absent from the checkpoint.
    #[error("{0}")]
    MissingTensor(String),
    /// A config, checkpoint or tokenizer file that cannot be used as it is.
    #[error("{0}")]
    InvalidFile(String),
    /// Arguments or inputs the caller passed that cannot be used.
    #[error("{0}")]
    InvalidInput(String),
    /// The hub refused access (401/403): a private or gated repo, or a bad token.
    #[error("{0}")]
    Unauthorized(String),
    /// The hub could not be reached or a download failed midway.
    #[error("{0}")]
    Network(String),
    /// A device this build or this machine cannot provide.
    #[error("{0}")]
    DeviceUnavailable(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Err(Error::InvalidInput(..))` from a format string.
macro_rules! invalid_input {
    ($($arg:tt)*) => { Err($crate::error::Error::InvalidInput(format!($($arg)*))) };
}
pub(crate) use invalid_input;

/// `Err(Error::InvalidFile(..))` from a format string.
macro_rules! invalid_file {
    ($($arg:tt)*) => { Err($crate::error::Error::InvalidFile(format!($($arg)*))) };
}
pub(crate) use invalid_file;
