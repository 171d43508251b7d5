//! The accept loop: TLS with tokio-rustls (or plain TCP for the browser-facing loopback
//! listener), HTTP/1.1 and HTTP/2 with hyper.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Accepts connections until `shutdown` turns true or its sender is dropped, over TLS with
/// `config`, or over plain TCP when it is `None`. Open connections are aborted when the loop
/// ends.
pub(crate) async fn serve(
    listener: TcpListener,
    config: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = config.map(TlsAcceptor::from);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(acceptor.clone(), stream, router.clone()));
                }
                Err(error) => {
                    // E.g. too many open files: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    tracing::debug!("mock provider stopped");
}

/// Serves one connection. A failed handshake only ends this connection.
async fn serve_connection(acceptor: Option<TlsAcceptor>, stream: TcpStream, router: Router) {
    let service = TowerToHyperService::new(router);
    let builder = auto::Builder::new(TokioExecutor::new());
    let served = match acceptor {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(tls) => {
                builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
            }
            Err(error) => {
                tracing::debug!(%error, "TLS handshake failed");
                return;
            }
        },
        None => {
            builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
        }
    };
    if let Err(error) = served {
        tracing::debug!(%error, "connection ended with an error");
    }
}
