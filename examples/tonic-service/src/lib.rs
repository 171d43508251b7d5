//! A tonic gRPC service behind the Doximity layer, in bearer mode, and the pieces its client
//! needs.
//!
//! - [`pb`]: the generated code of `proto/clinic/v1/directory.proto` (`clinic.v1.Directory`),
//!   compiled at build time by `protox` (pure Rust, no `protoc`);
//! - [`DirectoryService`]: `WhoAmI` (any valid caller) and `MyProfile` (needs
//!   `profile:read:basic`), reading the caller with `tower_doximity::grpc`;
//! - [`serve`]: `tonic::transport::Server::builder().layer(auth.layer())` on a listener;
//! - [`sign_in_at_mock`] and [`with_bearer`]: how the client gets a token from the
//!   (auto-approving) mock provider and sends it.
//!
//! Run it: `cargo run -p tonic-service` (the server; with no `DOXIMITY_CLIENT_ID` it embeds the
//! mock provider and writes the client's settings to an env file), then the command it prints,
//! `cargo run -p tonic-service --bin client`. See `docs/grpc-and-bearer.md`.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use doximity::scope::{ProfileReadBasic, Scopes};
use doximity::{AuthorizeRequest, Client, TokenSet};
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tower_doximity::grpc::{self, Scoped};
use tower_doximity::{BearerKind, DoximityAuth};

/// The code generated from `proto/clinic/v1/directory.proto`.
pub mod pb {
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        clippy::pedantic,
        clippy::doc_markdown,
        clippy::default_trait_access
    )]
    tonic::include_proto!("clinic.v1");
}

use pb::directory_server::{Directory, DirectoryServer};
use pb::{MyProfileRequest, MyProfileResponse, WhoAmIRequest, WhoAmIResponse};

/// `clinic.v1.Directory`, answering from the identity the layer attached.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectoryService;

#[tonic::async_trait]
impl Directory for DirectoryService {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let user = grpc::identity(&request)?;
        let authenticated_by = match grpc::bearer_credential(&request).map(|c| c.kind()) {
            Some(BearerKind::IdToken) => "id_token",
            Some(_) => "access_token",
            None => "session",
        };
        Ok(Response::new(WhoAmIResponse {
            sub: user.sub().to_owned(),
            scopes: user.scopes().iter().map(str::to_owned).collect(),
            authenticated_by: authenticated_by.to_owned(),
        }))
    }

    async fn my_profile(
        &self,
        request: Request<MyProfileRequest>,
    ) -> Result<Response<MyProfileResponse>, Status> {
        let user = Scoped::<ProfileReadBasic>::from_request(&request)?;
        let profile = user
            .profile()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(MyProfileResponse {
            name: profile.name.unwrap_or_default(),
            credentials: profile.credentials.unwrap_or_default(),
            specialty: profile.specialty.unwrap_or_default(),
        }))
    }
}

/// Serves [`DirectoryService`] behind `auth`'s layer on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    auth: &DoximityAuth,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .layer(auth.layer())
        .add_service(DirectoryServer::new(DirectoryService))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

/// `message` as a request carrying `authorization: Bearer <token>`.
pub fn with_bearer<T>(message: T, token: &str) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| Status::invalid_argument("the token is not a valid header value"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// An HTTPS client trusting only `ca_pem` and following no redirects: the stand-in for a
/// browser at the mock provider's authorize endpoint.
pub fn https_client(ca_pem: &[u8]) -> anyhow::Result<reqwest::Client> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.context("reading the CA certificate")?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Signs in at a provider that answers the authorize request at once (the mock with
/// `auto_approve`), as a browser would, and returns the tokens. Against Doximity itself a
/// person has to sign in in a browser: bring the access token instead.
pub async fn sign_in_at_mock(
    client: &Client,
    browser: &reqwest::Client,
    scopes: &Scopes,
) -> anyhow::Result<TokenSet> {
    let (url, pending) = client
        .authorize_url(&AuthorizeRequest::new().with_scopes(scopes))
        .await?;
    let response = browser.get(url).send().await?;
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .context("the provider did not redirect back (is it the auto-approving mock?)")?;
    let location: url::Url = location.parse()?;
    Ok(client
        .complete_login(&pending, location.query().unwrap_or(""))
        .await?)
}
