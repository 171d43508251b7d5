//! The error [`MockProvider`](crate::MockProvider) start-up can fail with.

/// Why the provider could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding the listener or writing the CA file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Generating the certificates or the TLS configuration failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Generating the RSA signing key failed.
    #[error("RSA key generation failed: {0}")]
    Key(String),
}
