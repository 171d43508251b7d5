//! An HTTPS front for an HTTP app: TLS terminated on `127.0.0.1:PORT` with a throwaway CA,
//! bytes forwarded to the app. The browser tests use it to put the demo on the same site as
//! the mock provider (`https://127.0.0.1`), the way a deployment puts its app behind TLS.

use std::net::SocketAddr;
use std::sync::Arc;

/// A running TLS front; stops when dropped.
pub struct TlsFront {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The PEM of the CA its certificate chains to (for the browser to trust).
    pub ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsFront {
    /// Serves TLS on `listener` (a certificate for `127.0.0.1` and `localhost`) and forwards
    /// every connection to `backend`.
    ///
    /// # Panics
    ///
    /// If the certificate cannot be generated.
    pub fn start(listener: tokio::net::TcpListener, backend: SocketAddr) -> TlsFront {
        let addr = listener.local_addr().expect("front addr");
        let (ca_pem, config) = material().expect("TLS material");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut app) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut app).await;
                });
            }
        });
        TlsFront { addr, ca_pem, task }
    }
}

/// The mock provider's own TLS generator, offering only HTTP/1.1 (the bytes go to an
/// HTTP/1.1 app unchanged).
fn material() -> Result<(String, Arc<rustls::ServerConfig>), doximity_mock::Error> {
    let tls = doximity_mock::server_tls()?;
    let mut config = tls.server_config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((tls.ca_pem, Arc::new(config)))
}
