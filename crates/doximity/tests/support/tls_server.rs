//! A scripted HTTPS server on `127.0.0.1:0` for what the mock provider cannot be made to do
//! (metadata it never sends, oversized or endless bodies). Its certificate chains to a CA
//! generated at start, which the client trusts through config, as it trusts the mock's.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the server does with one request.
pub(crate) enum Answer {
    /// Writes these bytes (a whole HTTP/1.1 response) and closes.
    Full(Vec<u8>),
    /// Writes these bytes, then keeps the connection open, writing nothing more, until the
    /// client closes it. A client that waits for the rest of the body waits until its timeout.
    Hold(Vec<u8>),
}

type Handler = dyn Fn(&str, &str) -> Answer + Send + Sync;

/// The running server; stops when dropped.
pub(crate) struct TlsServer {
    pub(crate) ca_pem: Vec<u8>,
    pub(crate) port: u16,
    hits: Arc<Mutex<HashMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    /// Starts a server answering each request with `handler(issuer, path)`.
    pub(crate) async fn start(
        handler: impl Fn(&str, &str) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let tls = doximity_mock::server_tls().unwrap();
        let mut server_config = tls.server_config;
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(server_config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let issuer = format!("https://127.0.0.1:{port}");
        let hits: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let task = tokio::spawn({
            let hits = hits.clone();
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, hits, handler, issuer) = (
                        acceptor.clone(),
                        hits.clone(),
                        handler.clone(),
                        issuer.clone(),
                    );
                    tokio::spawn(async move {
                        let Ok(mut stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let Some(path) = read_request(&mut stream).await else {
                            return;
                        };
                        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                        match handler(&issuer, &path) {
                            Answer::Full(bytes) => {
                                let _ = stream.write_all(&bytes).await;
                                let _ = stream.shutdown().await;
                            }
                            Answer::Hold(bytes) => {
                                let _ = stream.write_all(&bytes).await;
                                let _ = stream.flush().await;
                                let mut sink = [0u8; 1024];
                                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                            }
                        }
                    });
                }
            }
        });
        Self {
            ca_pem: tls.ca_pem.into_bytes(),
            port,
            hits,
            task,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub(crate) fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// How many requests asked for `path` (query excluded).
    pub(crate) fn hits(&self, path: &str) -> u64 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// A config for this server as the provider, trusting its CA.
    pub(crate) fn config(&self) -> doximity::Config {
        doximity::Config::new(
            "client",
            doximity::secret::ClientSecret::new("secret".into()),
            super::REDIRECT.parse().unwrap(),
        )
        .with_issuer(&self.issuer())
        .unwrap()
        .with_ca_cert_pem(self.ca_pem.clone())
    }
}

/// Reads one request head (and its body, if it has a `Content-Length`); returns the path.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let target = head.split_whitespace().nth(1)?;
    Some(target.split('?').next().unwrap_or(target).to_owned())
}

/// A whole HTTP/1.1 response with a `Content-Length`.
pub(crate) fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The head of a response declaring `length` bytes, with none of them.
pub(crate) fn head_with_length(content_type: &str, length: usize) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\n\r\n")
        .into_bytes()
}

/// A chunked response's head and `sent` bytes of its body in 64 KiB chunks, without the final
/// chunk: with [`Answer::Hold`], the rest of the body never comes.
pub(crate) fn chunked_part(content_type: &str, sent: usize) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 64 * 1024];
    let mut left = sent;
    while left > 0 {
        let n = left.min(chunk.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&chunk[..n]);
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out
}

/// A JSON response.
pub(crate) fn json(status: u16, value: &serde_json::Value) -> Answer {
    Answer::Full(response(
        status,
        "application/json",
        value.to_string().as_bytes(),
    ))
}

/// An openid-configuration for `issuer` with every endpoint under it, plus `extra` fields.
pub(crate) fn discovery(issuer: &str, extra: &serde_json::Value) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
    });
    if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        doc.extend(extra.clone());
    }
    doc
}

/// Answers discovery (the authorization-server document is 404) and an empty JWKS; every
/// other path goes to `rest`.
pub(crate) fn provider(
    extra_metadata: serde_json::Value,
    rest: impl Fn(&str, &str) -> Answer + Send + Sync + 'static,
) -> impl Fn(&str, &str) -> Answer + Send + Sync + 'static {
    move |issuer, path| match path {
        "/.well-known/openid-configuration" => json(200, &discovery(issuer, &extra_metadata)),
        "/.well-known/oauth-authorization-server" => {
            json(404, &serde_json::json!({"error": "not_found"}))
        }
        "/.well-known/jwks.json" => json(200, &serde_json::json!({"keys": []})),
        _ => rest(issuer, path),
    }
}
