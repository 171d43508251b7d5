//! The throwaway certificate authority and the server's TLS configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// What a server needs for TLS, plus the CA a client must trust.
#[derive(Debug)]
#[non_exhaustive]
pub struct TlsMaterial {
    /// The PEM of the throwaway CA the server's certificate chains to.
    pub ca_pem: String,
    /// A rustls server configuration (the crate's provider, see [`provider`]) with that certificate; ALPN offers `h2`
    /// and `http/1.1`.
    pub server_config: rustls::ServerConfig,
}

/// A throwaway CA and a server configuration for `127.0.0.1`, `::1` and `localhost`, as the
/// mock provider generates for itself at start: for tests that need another HTTPS endpoint
/// a browser or client can trust the same way (by its CA, never by skipping checks).
///
/// ```
/// let tls = doximity_mock::server_tls().unwrap();
/// assert!(tls.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
pub fn server_tls() -> Result<TlsMaterial, Error> {
    generate(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Generates a CA (ECDSA P-256) and a leaf for `127.0.0.1`, `::1`, `localhost`
/// and `extra_ip` signed by it, and builds a rustls server configuration with the
/// crate's provider (never the process default).
pub(crate) fn generate(extra_ip: IpAddr) -> Result<TlsMaterial, Error> {
    build(extra_ip).map_err(|e| Error::Tls(e.to_string()))
}

fn build(extra_ip: IpAddr) -> Result<TlsMaterial, Box<dyn std::error::Error + Send + Sync>> {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;

    let ca_key = KeyPair::generate_for(alg)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "doximity-mock test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate_for(alg)?;
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()])?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "doximity-mock");
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if !extra_ip.is_unspecified() && !ips.contains(&extra_ip) {
        ips.push(extra_ip);
    }
    leaf_params
        .subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;

    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));

    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    Ok(TlsMaterial {
        ca_pem,
        server_config: config,
    })
}

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("doximity-mock needs a rustls crypto provider: enable `ring` or `aws-lc-rs`");

/// The rustls crypto provider the mock uses for its server and its client configurations:
/// `aws-lc-rs` when that feature is on, else `ring`. Never the process-level default, so a
/// test's own choice of default provider does not change the mock.
///
/// ```
/// let provider = doximity_mock::provider();
/// assert!(!provider.cipher_suites.is_empty());
/// ```
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}
