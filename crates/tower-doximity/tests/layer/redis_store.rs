//! `RedisStore` against a real `redis-server` (`REDIS_URL`, or a child started on a free
//! port): app instances sharing one Redis and one cookie key, each its own `Router` and its
//! own connection, in front of the mock provider over HTTPS. Time moves through an injected
//! clock; the only real waiting is the layer's own (a refresh lock's lease).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{REDIRECT, app_with, request};
use crate::redis_server::RedisServer;
use axum::Router;
use axum::body::Body;
use doximity::Client;
use doximity_mock::{Endpoint, MockProvider};
use doximity_test::oneshot::{self, Jar, body, set_cookies};
use doximity_test::{TestClock, demo_config, https_client};
use http::{Request, Response, StatusCode};
use redis::AsyncCommands;
use tower::ServiceExt;
use tower_doximity::{
    AuthError, DoximityAuth, Key, RedisStore, RefreshLock, SessionId, SessionStore, StoreFuture,
    StoredSession,
};

static PREFIXES: AtomicUsize = AtomicUsize::new(0);

/// A key prefix of its own for each harness, so tests can share one server.
fn fresh_prefix() -> String {
    format!(
        "test{}-{}:",
        std::process::id(),
        PREFIXES.fetch_add(1, Ordering::SeqCst)
    )
}

struct Instance {
    auth: DoximityAuth,
    app: Router,
    store: RedisStore,
}

struct Harness {
    mock: MockProvider,
    instances: Vec<Instance>,
    clock: TestClock,
    browser: reqwest::Client,
    key: Key,
    prefix: String,
    redis: redis::aio::MultiplexedConnection,
}

struct Options {
    instances: usize,
    ttl: Option<Duration>,
    lease: Option<Duration>,
    configure: fn(DoximityAuth) -> DoximityAuth,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            instances: 2,
            ttl: None,
            lease: None,
            configure: |a| a,
        }
    }
}

async fn harness(server: &RedisServer, options: Options) -> Harness {
    let mut builder = doximity_test::auto_approving(REDIRECT);
    if let Some(ttl) = options.ttl {
        builder = builder.access_token_ttl(ttl);
    }
    let mock = builder.start().await.unwrap();
    let config = demo_config(&mock, REDIRECT);
    let clock = TestClock::default();
    let key = Key::generate();
    let prefix = fresh_prefix();
    let mut instances = Vec::new();
    for _ in 0..options.instances {
        let client = Client::discover_with_clock(config.clone(), clock.clock())
            .await
            .unwrap();
        let mut store = RedisStore::connect(server.url())
            .await
            .unwrap()
            .with_prefix(prefix.clone());
        if let Some(lease) = options.lease {
            store = store.with_refresh_lease(lease);
        }
        let auth = (options.configure)(
            DoximityAuth::new(client)
                .with_cookie_key(key.clone())
                .with_store(store.clone()),
        );
        instances.push(Instance {
            app: app_with(&auth),
            auth,
            store,
        });
    }
    let browser = https_client(&mock);
    Harness {
        mock,
        instances,
        clock,
        browser,
        key,
        prefix,
        redis: server.connection().await,
    }
}

/// Two instances whose access tokens live 40 seconds.
async fn expiring_harness(server: &RedisServer) -> Harness {
    harness(
        server,
        Options {
            ttl: Some(Duration::from_secs(40)),
            ..Options::default()
        },
    )
    .await
}

impl Harness {
    fn store(&self) -> &RedisStore {
        &self.instances[0].store
    }

    async fn send(&self, instance: usize, req: Request<Body>) -> Response<Body> {
        oneshot::send(&self.instances[instance].app, req).await
    }

    /// Signs out through `instance` as the app's sign-out button does (a same-origin POST).
    async fn logout(&self, instance: usize, jar: &Jar) -> Response<Body> {
        self.send(
            instance,
            request(
                http::Method::POST,
                "/auth/doximity/logout",
                jar,
                &[("sec-fetch-site", "same-origin")],
            ),
        )
        .await
    }

    async fn get(&self, instance: usize, path: &str, jar: &Jar) -> Response<Body> {
        self.send(instance, request(http::Method::GET, path, jar, &[]))
            .await
    }

    /// Signs in through `instance`, carrying `jar` (an existing session, if any).
    async fn sign_in_with(&self, instance: usize, mut jar: Jar) -> Jar {
        let app = &self.instances[instance].app;
        oneshot::sign_in(app, &self.browser, "/auth/doximity/login", &mut jar).await;
        jar
    }

    async fn sign_in(&self, instance: usize) -> Jar {
        self.sign_in_with(instance, Jar::default()).await
    }

    fn advance(&self, secs: i64) {
        self.mock.set_clock_offset(self.clock.advance(secs));
    }

    /// The session id a cookie carries (the test holds the cookie key): opened as the layer
    /// seals, AES-256-GCM under HKDF-SHA256(cookie key; issuer, client id), the cookie name
    /// as associated data (`docs/layer.md`).
    fn session_id(&self, jar: &Jar) -> String {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        use base64::Engine;
        let name = "__Host-doximity-session";
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&jar.0[name])
            .unwrap();
        let mut info = Vec::new();
        for part in [self.mock.issuer(), self.mock.client().client_id] {
            info.extend_from_slice(&(part.len() as u64).to_be_bytes());
            info.extend_from_slice(part.as_bytes());
        }
        let mut key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(b"doximity-rs cookie sealing v2"), self.key.master())
            .expand(&info, &mut key)
            .unwrap();
        let plain = aes_gcm::Aes256Gcm::new_from_slice(&key)
            .unwrap()
            .decrypt(
                aes_gcm::Nonce::from_slice(&raw[..12]),
                Payload {
                    msg: &raw[12..],
                    aad: name.as_bytes(),
                },
            )
            .unwrap();
        String::from_utf8(plain).unwrap()
    }

    fn key_of(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .redis
            .clone()
            .keys(format!("{}*", self.prefix))
            .await
            .unwrap();
        keys.sort();
        keys
    }

    async fn pttl(&self, key: &str) -> i64 {
        self.redis.clone().pttl(key).await.unwrap()
    }

    async fn has_live_session(&self, id: &str) -> bool {
        self.redis
            .clone()
            .hexists(self.key_of("session", id), "d")
            .await
            .unwrap()
    }

    /// The session as stored: `r`, the hot field's metadata, and `tokens`, the sealed tokens
    /// opened with the key by the documented derivation (what a test may know, a dump may
    /// not).
    async fn stored_json(&self, id: &str) -> serde_json::Value {
        let (hot, sealed): (String, String) = redis::cmd("HMGET")
            .arg(self.key_of("session", id))
            .arg("d")
            .arg("t")
            .query_async(&mut self.redis.clone())
            .await
            .unwrap();
        let mut hot: serde_json::Value = serde_json::from_str(&hot).unwrap();
        let opened = open_sealed(
            &self.key,
            &self.mock.issuer(),
            &self.mock.client().client_id,
            "doximity-store-tokens",
            &sealed,
        );
        let wire: serde_json::Value = serde_json::from_slice(&opened).unwrap();
        assert_eq!(wire["i"], id, "the tokens are bound to their session");
        hot["tokens"] = wire["t"].clone();
        hot
    }
}

/// The AES-256 key the layer seals with for this issuer and client.
fn subkey(key: &Key, issuer: &str, client_id: &str) -> [u8; 32] {
    let mut info = Vec::new();
    for part in [issuer, client_id] {
        info.extend_from_slice(&(part.len() as u64).to_be_bytes());
        info.extend_from_slice(part.as_bytes());
    }
    let mut subkey = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"doximity-rs cookie sealing v2"), key.master())
        .expand(&info, &mut subkey)
        .unwrap();
    subkey
}

/// Opens a value the layer sealed, by the derivation `docs/security.md` documents: AES-256-GCM
/// under HKDF-SHA256(salt "doximity-rs cookie sealing v2", the 64-byte key, info = the issuer
/// and the client id, each length-prefixed), `aad` as associated data, base64 of
/// `nonce | ciphertext | tag`.
fn open_sealed(key: &Key, issuer: &str, client_id: &str, aad: &str, sealed: &str) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .unwrap();
    let (nonce, rest) = data.split_at(12);
    aes_gcm::Aes256Gcm::new_from_slice(&subkey(key, issuer, client_id))
        .unwrap()
        .decrypt(
            aes_gcm::Nonce::from_slice(nonce),
            Payload {
                msg: rest,
                aad: aad.as_bytes(),
            },
        )
        .unwrap()
}

/// Seals `plaintext` as the layer does (see [`open_sealed`]).
fn seal_for(key: &Key, issuer: &str, client_id: &str, aad: &str, plaintext: &str) -> String {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use base64::Engine as _;
    let nonce: [u8; 12] = rand::random();
    let sealed = aes_gcm::Aes256Gcm::new_from_slice(&subkey(key, issuer, client_id))
        .unwrap()
        .encrypt(
            aes_gcm::Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode([&nonce[..], &sealed].concat())
}

macro_rules! redis_or_skip {
    () => {
        match RedisServer::shared().await {
            Some(server) => server,
            None => return,
        }
    };
}

#[tokio::test]
async fn the_cookie_holds_only_an_id_and_redis_holds_no_token_in_clear() {
    let server = redis_or_skip!();
    let h = harness(&server, Options::default()).await;
    let jar = h.sign_in(0).await;
    assert!(!jar.0.contains_key("__Host-doximity-tokens"));
    let id = h.session_id(&jar);
    assert!(id.len() >= 22, "a session id of at least 128 bits");
    assert_eq!(h.get(0, "/me", &jar).await.status(), StatusCode::OK);
    assert_ne!(body(h.get(1, "/token", &jar).await).await, "0");

    // What the session holds, opened with the key.
    let stored = h.stored_json(&id).await;
    let tokens = &stored["tokens"];
    let secrets: Vec<String> = ["access_token", "refresh_token", "id_token"]
        .iter()
        .map(|k| tokens[k].as_str().unwrap().to_owned())
        .collect();
    assert!(secrets.iter().all(|s| s.len() > 20), "{secrets:?}");
    let sub = stored["u"].as_str().unwrap().to_owned();

    // Everything under the prefix, raw, as a dump would show it: the session, the user's
    // index, and the replay guard's mark of the used sign-in (a SHA-256 of its `state`, never
    // the `state` itself).
    let mut keys = h.keys().await;
    let used = h.key_of("used", "");
    let marks: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with(&used))
        .cloned()
        .collect();
    assert_eq!(marks.len(), 1, "{keys:?}");
    let hash = &marks[0][used.len()..];
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );
    keys.retain(|k| !k.starts_with(&used));
    assert_eq!(
        keys,
        [h.key_of("session", &id), h.key_of("sub", &sub)],
        "unexpected keys"
    );
    let mut conn = h.redis.clone();
    let raw: HashMap<String, String> = conn.hgetall(h.key_of("session", &id)).await.unwrap();
    let members: Vec<String> = conn.smembers(h.key_of("sub", &sub)).await.unwrap();
    assert_eq!(members, std::slice::from_ref(&id));
    let dump = format!("{raw:?}");
    for secret in &secrets {
        // Any 16-character piece of a token would be a leak.
        for piece in secret.as_bytes().chunks(16).filter(|c| c.len() == 16) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(!dump.contains(piece), "a token is readable in Redis");
        }
    }
    // In clear, only what a store needs: `sub` (it also names the index), the revision and
    // the expiries; the record (scopes, timestamps, profile) and the tokens are sealed.
    let hot: serde_json::Value = serde_json::from_str(&raw["d"]).unwrap();
    let mut fields: Vec<&str> = hot
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["d", "h", "i", "r", "t", "u", "v", "w"], "{hot}");
    assert_eq!(hot["t"], "", "the tokens live in their own field");
    assert!(
        !raw["d"].contains("openid"),
        "the scopes are readable in Redis"
    );
    assert_eq!(raw["r"], "0");
    assert_eq!(raw.len(), 3, "{:?}", raw.keys());
    // The session's cookie, sealed by the documented derivation, opens to the same page.
    let name = "__Host-doximity-session";
    let cookie_for = |id: &str| {
        let mut jar = jar.clone();
        jar.0.insert(
            name.to_owned(),
            seal_for(
                &h.key,
                &h.mock.issuer(),
                &h.mock.client().client_id,
                name,
                id,
            ),
        );
        jar
    };
    assert_eq!(
        h.get(0, "/me", &cookie_for(&id)).await.status(),
        StatusCode::OK
    );
    // The value is bound to its id: moved under another id it does not open.
    let other_id = "AAAAAAAAAAAAAAAAAAAAAA";
    let other = h.key_of("session", other_id);
    let _: () = conn
        .hset_multiple(
            &other,
            &[("r", &raw["r"]), ("d", &raw["d"]), ("t", &raw["t"])],
        )
        .await
        .unwrap();
    assert_eq!(
        h.get(0, "/me", &cookie_for(other_id)).await.status(),
        StatusCode::SEE_OTHER
    );
    let _: () = conn.del(&other).await.unwrap();
}

#[tokio::test]
async fn entries_expire_with_the_idle_and_absolute_timeouts_and_activity_extends_them() {
    let server = redis_or_skip!();
    let h = harness(
        &server,
        Options {
            instances: 1,
            ttl: Some(Duration::from_secs(3600)),
            configure: |a| {
                a.with_idle_timeout(Duration::from_secs(600))
                    .with_absolute_timeout(Duration::from_secs(720))
            },
            ..Options::default()
        },
    )
    .await;
    let jar = h.sign_in(0).await;
    let id = h.session_id(&jar);
    let key = h.key_of("session", &id);
    let sub = body(h.get(0, "/me", &jar).await).await;
    // Ten minutes of idle timeout left; the index lives at least as long (read first: both
    // count down).
    let index = h.pttl(&h.key_of("sub", &sub)).await;
    let ttl = h.pttl(&key).await;
    assert!((590_000..=600_000).contains(&ttl), "{ttl}");
    assert!(index >= ttl, "{index} < {ttl}");
    // Shorten it by hand (as if time had passed in Redis too); a request five minutes later
    // writes `last_seen` and sets the TTL from the layer's deadlines again: the idle timeout
    // would give 10 more minutes, the absolute one leaves 7.
    let _: () = h.redis.clone().pexpire(&key, 5_000).await.unwrap();
    h.advance(300);
    assert_eq!(h.get(0, "/me", &jar).await.status(), StatusCode::OK);
    let index = h.pttl(&h.key_of("sub", &sub)).await;
    let ttl = h.pttl(&key).await;
    assert!((410_000..=420_000).contains(&ttl), "{ttl}");
    assert!(index >= ttl, "{index} < {ttl}");
}

#[tokio::test]
async fn signing_in_again_deletes_the_old_session_in_redis() {
    let server = redis_or_skip!();
    let h = harness(&server, Options::default()).await;
    let first = h.sign_in(0).await;
    let old = h.session_id(&first);
    let second = h.sign_in_with(1, first.clone()).await;
    let new = h.session_id(&second);
    assert_ne!(old, new, "the session id was not rotated");
    assert!(!h.has_live_session(&old).await);
    assert!(h.has_live_session(&new).await);
    for i in 0..2 {
        assert_eq!(
            h.get(i, "/me", &first).await.status(),
            StatusCode::SEE_OTHER
        );
        assert_eq!(h.get(i, "/me", &second).await.status(), StatusCode::OK);
    }
    // The index lost the retired id on the next sign-in of that user.
    let sub = body(h.get(0, "/me", &second).await).await;
    let third = h.sign_in(0).await;
    let mut members: Vec<String> = h
        .redis
        .clone()
        .smembers(h.key_of("sub", &sub))
        .await
        .unwrap();
    members.sort();
    let mut want = vec![new, h.session_id(&third)];
    want.sort();
    assert_eq!(members, want);
}

#[tokio::test]
async fn logout_on_one_instance_signs_out_on_every_instance() {
    let server = redis_or_skip!();
    let h = harness(&server, Options::default()).await;
    let jar = h.sign_in(0).await;
    let id = h.session_id(&jar);
    assert_eq!(h.get(1, "/me", &jar).await.status(), StatusCode::OK);
    let res = h.logout(1, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(!h.has_live_session(&id).await);
    for i in 0..2 {
        assert_eq!(h.get(i, "/me", &jar).await.status(), StatusCode::SEE_OTHER);
    }
    h.instances[1].auth.drain().await;
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_of_a_user_on_every_instance() {
    let server = redis_or_skip!();
    let h = harness(&server, Options::default()).await;
    let laptop = h.sign_in(0).await;
    let phone = h.sign_in(1).await;
    let sub = body(h.get(0, "/me", &laptop).await).await;
    assert_eq!(body(h.get(1, "/me", &phone).await).await, sub);
    // Another user's session is untouched.
    let others: Vec<String> = h
        .mock
        .clinicians()
        .into_iter()
        .map(|c| c.sub)
        .filter(|s| *s != sub)
        .collect();
    h.mock.set_auto_approve(Some(others[0].clone()));
    let colleague = h.sign_in(0).await;
    assert_eq!(body(h.get(1, "/me", &colleague).await).await, others[0]);

    assert_eq!(h.store().sign_out_everywhere(&sub).await.unwrap(), 2);
    for i in 0..2 {
        for jar in [&laptop, &phone] {
            let res = h.get(i, "/me", jar).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "instance {i}");
            assert!(set_cookies(&res).iter().any(|c| c.contains("Max-Age=0")));
        }
        assert_eq!(h.get(i, "/me", &colleague).await.status(), StatusCode::OK);
    }
    assert_eq!(
        h.pttl(&h.key_of("sub", &sub)).await,
        -2,
        "the index is gone"
    );
    // Nothing left to end.
    assert_eq!(h.store().sign_out_everywhere(&sub).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_hammering_one_expiring_session_refresh_exactly_once() {
    let server = redis_or_skip!();
    let h = Arc::new(expiring_harness(&server).await);
    let jar = h.sign_in(0).await;
    let id = h.session_id(&jar);
    h.advance(35);
    let before = h.mock.requests(Endpoint::Token);
    let mut tasks = Vec::new();
    for n in 0..200 {
        let (h, jar) = (h.clone(), jar.clone());
        // Interleaved: even requests to instance 0, odd ones to instance 1.
        tasks.push(tokio::spawn(async move {
            let res = h.get(n % 2, "/token", &jar).await;
            (res.status(), body(res).await)
        }));
    }
    for t in tasks {
        let (status, text) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_ne!(text, "0");
    }
    assert_eq!(h.mock.requests(Endpoint::Token) - before, 1);
    let stored = h.stored_json(&id).await;
    assert_eq!(stored["r"], 1, "one new revision");
    assert_eq!(
        h.pttl(&h.key_of("lock", &id)).await,
        -2,
        "the lock was released"
    );
    // Both instances serve the refreshed session without another provider call.
    for i in 0..2 {
        assert_eq!(h.get(i, "/me", &jar).await.status(), StatusCode::OK);
    }
    assert_eq!(h.mock.requests(Endpoint::Token) - before, 1);
}

#[tokio::test]
async fn a_dead_lock_holder_releases_on_lease_expiry() {
    let server = redis_or_skip!();
    let h = expiring_harness(&server).await;
    let jar = h.sign_in(0).await;
    let id = h.session_id(&jar);
    // An instance took the lock and died: nobody will release it; its lease is 400 ms.
    let lock = h.key_of("lock", &id);
    let planted: Option<String> = redis::cmd("SET")
        .arg(&lock)
        .arg("an-instance-that-died")
        .arg("NX")
        .arg("PX")
        .arg(400)
        .query_async(&mut h.redis.clone())
        .await
        .unwrap();
    assert_eq!(planted.as_deref(), Some("OK"));
    let planted_at = Instant::now();
    h.advance(35);
    let before = h.mock.requests(Endpoint::Token);
    let res = h.get(1, "/me", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        planted_at.elapsed() >= Duration::from_millis(350),
        "the refresh did not wait for the lease"
    );
    assert_eq!(h.mock.requests(Endpoint::Token) - before, 1);
    assert_eq!(h.stored_json(&id).await["r"], 1);
    assert_eq!(h.pttl(&lock).await, -2);
}

#[tokio::test]
async fn a_lock_held_past_its_wait_gives_up_without_signing_out() {
    let server = redis_or_skip!();
    let h = harness(
        &server,
        Options {
            instances: 1,
            ttl: Some(Duration::from_secs(40)),
            // A short lease, so the test does not wait 15 s.
            lease: Some(Duration::from_millis(300)),
            ..Options::default()
        },
    )
    .await;
    let jar = h.sign_in(0).await;
    let id = h.session_id(&jar);
    // A lock without expiry (set by hand, not by an instance): the layer waits one lease,
    // then keeps serving the still-valid token instead of refreshing or signing out.
    let _: () = h
        .redis
        .clone()
        .set(h.key_of("lock", &id), "stuck")
        .await
        .unwrap();
    h.advance(35);
    let before = h.mock.requests(Endpoint::Token);
    let res = h.get(0, "/me", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(h.mock.requests(Endpoint::Token), before);
    assert!(h.has_live_session(&id).await);
    let _: () = h.redis.clone().del(h.key_of("lock", &id)).await.unwrap();
}

#[tokio::test]
async fn redis_down_is_a_503_that_keeps_the_cookie_and_sessions_work_again_after() {
    // Our own server: it is stopped and restarted. Its append-only file is synced on every
    // write, so the restart keeps the sessions (as a persistent or replicated Redis would).
    let Some(mut server) = RedisServer::spawn(true).await else {
        return;
    };
    let h = harness(&server, Options::default()).await;
    let jar = h.sign_in(0).await;
    assert_eq!(h.get(1, "/me", &jar).await.status(), StatusCode::OK);

    server.stop();
    for (instance, accept) in [(0, "application/json"), (1, "text/html")] {
        let res = h
            .send(
                instance,
                Request::get("/me")
                    .header("cookie", jar.header())
                    .header("accept", accept)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            set_cookies(&res).is_empty(),
            "a store failure cleared the cookie"
        );
        assert!(matches!(
            res.extensions().get::<AuthError>(),
            Some(AuthError::Store(_))
        ));
        let text = body(res).await;
        if accept == "application/json" {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["error"], "session_store_unavailable");
        }
        assert!(!text.contains(server.url()), "{text}");
    }
    // gRPC callers get UNAVAILABLE.
    let res = h
        .send(
            0,
            Request::post("/me")
                .header("cookie", jar.header())
                .header("content-type", "application/grpc")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.headers()["grpc-status"], "14");
    // Signing in needs the store too: a 503, not a half-made session.
    let mut fresh = Jar::default();
    let res = h.get(0, "/auth/doximity/login", &fresh).await;
    fresh.update(&res);
    let authorize = res.headers()["location"].to_str().unwrap().to_owned();
    let at = h.browser.get(&authorize).send().await.unwrap();
    let back = url::Url::parse(at.headers()["location"].to_str().unwrap()).unwrap();
    let callback = format!("{}?{}", back.path(), back.query().unwrap_or_default());
    let res = h.get(0, &callback, &fresh).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let tokens = h.mock.requests(Endpoint::Token);

    server.restart().await;
    // Each instance reconnects by itself: poll until it answers, every answer meanwhile a 503.
    for i in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let res = h.get(i, "/me", &jar).await;
            if res.status() == StatusCode::OK {
                break;
            }
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(set_cookies(&res).is_empty());
            assert!(Instant::now() < deadline, "instance {i} did not reconnect");
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(
        h.mock.requests(Endpoint::Token),
        tokens,
        "the session came back without a refresh"
    );
}

#[tokio::test]
async fn no_secret_in_debug_or_errors() {
    let server = redis_or_skip!();
    let h = harness(&server, Options::default()).await;
    let debug = format!("{:?} {:?}", h.store(), h.instances[0].auth);
    assert!(debug.contains("[redacted]"), "{debug}");
    assert!(!debug.contains(server.url()), "{debug}");
    // A password in the URL of a server that is not there stays out of the error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisStore::connect(&format!("redis://:hunter2-secret@127.0.0.1:{closed}/"))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    let err = RedisStore::connect("not a url :hunter2").await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

/// Passes through to a `RedisStore`, but can hold the next `load` after it read Redis: a
/// request is then parked between reading the session and asking for the refresh lock.
struct Gated {
    inner: RedisStore,
    armed: std::sync::atomic::AtomicBool,
    reached: tokio::sync::Notify,
    open: tokio::sync::Notify,
}

impl SessionStore for Gated {
    fn load<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(async move {
            let found = self.inner.load(id).await;
            if self.armed.swap(false, Ordering::SeqCst) {
                self.reached.notify_one();
                self.open.notified().await;
            }
            found
        })
    }
    fn store<'a>(&'a self, id: &'a SessionId, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        self.inner.store(id, session)
    }
    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()> {
        self.inner.delete(id)
    }
    fn lock_refresh<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, RefreshLock> {
        self.inner.lock_refresh(id)
    }
}

#[tokio::test]
async fn a_refresh_another_instance_finished_after_our_read_is_used_not_repeated() {
    let server = redis_or_skip!();
    let h = Arc::new(expiring_harness(&server).await);
    let jar = h.sign_in(0).await;
    let (gated, late) = h.gated();
    h.advance(35);
    let before = h.mock.requests(Endpoint::Token);
    // Instance 1 reads the expiring session (revision 0), and is held there...
    let parked = spawn_get(late, &jar);
    gated.reached.notified().await;
    // ...while instance 0 refreshes it (revision 1, the old refresh token now retired).
    assert_eq!(h.get(0, "/me", &jar).await.status(), StatusCode::OK);
    assert_eq!(h.mock.requests(Endpoint::Token) - before, 1);
    // Instance 1 gets the lock, but reads the session again first and uses revision 1.
    gated.open.notify_one();
    let res = parked.await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the late instance signed the user out"
    );
    assert_eq!(h.mock.requests(Endpoint::Token) - before, 1);
}

impl Harness {
    /// Instance 1's app over a [`Gated`] store, armed: its next request parks after reading
    /// the session.
    fn gated(&self) -> (Arc<Gated>, Router) {
        let gated = Arc::new(Gated {
            inner: self.instances[1].store.clone(),
            armed: true.into(),
            reached: tokio::sync::Notify::new(),
            open: tokio::sync::Notify::new(),
        });
        let app = app_with(&self.instances[1].auth.clone().with_store(gated.clone()));
        (gated, app)
    }
}

fn spawn_get(app: Router, jar: &Jar) -> tokio::task::JoinHandle<Response<Body>> {
    let req = Request::get("/me")
        .header("cookie", jar.header())
        .body(Body::empty())
        .unwrap();
    tokio::spawn(async move { app.oneshot(req).await.unwrap() })
}

#[tokio::test]
async fn a_write_in_flight_does_not_bring_back_a_deleted_session() {
    let server = redis_or_skip!();
    let h = harness(&server, Options::default()).await;
    let jar = h.sign_in(0).await;
    let id = h.session_id(&jar);
    // Two minutes later instance 1 reads the session (and will write `last_seen` back)...
    h.advance(120);
    let (gated, late) = h.gated();
    let parked = spawn_get(late, &jar);
    gated.reached.notified().await;
    // ...while the user signs out on instance 0.
    let res = h.logout(0, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    gated.open.notify_one();
    // The request already in flight finishes; its write does not revive the session.
    assert_eq!(parked.await.unwrap().status(), StatusCode::OK);
    assert!(!h.has_live_session(&id).await);
    for i in 0..2 {
        assert_eq!(h.get(i, "/me", &jar).await.status(), StatusCode::SEE_OTHER);
    }
    h.instances[0].auth.drain().await;
}

#[tokio::test]
async fn an_older_revision_never_replaces_a_refreshed_session() {
    let server = redis_or_skip!();
    let h = harness(
        &server,
        Options {
            // Refresh 50 s before expiry: at 150 s.
            ttl: Some(Duration::from_secs(200)),
            ..Options::default()
        },
    )
    .await;
    let jar = h.sign_in(0).await;
    let id = h.session_id(&jar);
    // At 100 s instance 1 reads revision 0 (no refresh due; `last_seen` due for a write)...
    h.advance(100);
    let (gated, late) = h.gated();
    let parked = spawn_get(late, &jar);
    gated.reached.notified().await;
    // ...at 160 s instance 0 refreshes: revision 1, the old refresh token retired.
    h.advance(60);
    let before = h.mock.requests(Endpoint::Token);
    assert_eq!(h.get(0, "/me", &jar).await.status(), StatusCode::OK);
    assert_eq!(h.mock.requests(Endpoint::Token) - before, 1);
    // Instance 1's late write of revision 0 is refused by the store.
    gated.open.notify_one();
    assert_eq!(parked.await.unwrap().status(), StatusCode::OK);
    assert_eq!(h.stored_json(&id).await["r"], 1);
    // Much later, the next refresh uses the current refresh token and works.
    h.advance(200);
    assert_eq!(h.get(1, "/me", &jar).await.status(), StatusCode::OK);
    assert_eq!(h.mock.requests(Endpoint::Token) - before, 2);
    assert_eq!(h.stored_json(&id).await["r"], 2);
}

/// The replay guard is shared through Redis: a sign-in completed on one instance cannot be
/// replayed on another (its transaction cookie and callback URL copied), and no provider call
/// is made for the replay.
#[tokio::test]
async fn a_sign_in_completed_on_one_instance_cannot_be_replayed_on_another() {
    let server = redis_or_skip!();
    let h = harness(&server, Options::default()).await;
    let mut jar = Jar::default();
    let res = h.get(0, "/auth/doximity/login", &jar).await;
    jar.update(&res);
    let authorize = res.headers()["location"].to_str().unwrap().to_owned();
    let at = h.browser.get(&authorize).send().await.unwrap();
    let back = url::Url::parse(at.headers()["location"].to_str().unwrap()).unwrap();
    let callback = format!("{}?{}", back.path(), back.query().unwrap_or_default());
    let copy = jar.clone();
    let res = h.get(0, &callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let tokens = h.mock.requests(Endpoint::Token);
    let res = h
        .send(
            1,
            Request::get(&callback)
                .header("cookie", copy.header())
                .header("accept", "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body(res).await.contains("login_transaction_replayed"));
    assert_eq!(
        h.mock.requests(Endpoint::Token),
        tokens,
        "the replay reached the provider"
    );
}
