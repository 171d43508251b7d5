//! One request through a tower service (the layer in process), and what to read from its
//! response: the body, the cookies it sets, its `Location`.

use std::collections::BTreeMap;
use std::fmt::Debug;

use axum::body::Body;
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};

/// Sends `req` through a clone of `service` and returns the response.
///
/// # Panics
///
/// When the service fails (the layer's services never do).
pub async fn send<S, B, R>(service: &S, req: Request<B>) -> Response<R>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Debug,
{
    service
        .clone()
        .oneshot(req)
        .await
        .expect("the service answers")
}

/// The body of `res`, as UTF-8.
///
/// # Panics
///
/// When the body fails or is not UTF-8.
pub async fn body<B>(res: Response<B>) -> String
where
    B: http_body::Body,
    B::Error: Debug,
{
    let bytes = res
        .into_body()
        .collect()
        .await
        .expect("the body is read")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("the body is UTF-8")
}

/// The `Set-Cookie` headers of `res`.
///
/// # Panics
///
/// When one is not ASCII.
pub fn set_cookies<B>(res: &Response<B>) -> Vec<String> {
    res.headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("an ASCII Set-Cookie").to_owned())
        .collect()
}

/// The `Location` header of `res`.
///
/// # Panics
///
/// When there is none or it is not ASCII.
pub fn location<B>(res: &Response<B>) -> String {
    res.headers()[http::header::LOCATION]
        .to_str()
        .expect("an ASCII Location")
        .to_owned()
}

/// A minimal cookie jar: name → value, removals (`Max-Age=0`) honoured.
#[derive(Default, Clone, Debug)]
pub struct Jar(pub BTreeMap<String, String>);

impl Jar {
    /// Takes in the cookies `res` sets or removes.
    ///
    /// # Panics
    ///
    /// When a `Set-Cookie` header is not `name=value…`.
    pub fn update<B>(&mut self, res: &Response<B>) {
        for s in set_cookies(res) {
            let pair = s.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("a cookie is name=value");
            if s.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// The `Cookie` header that sends the whole jar.
    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// `GET path` through `service`, without cookies or other headers.
///
/// # Panics
///
/// When `path` is not a valid URI or the service fails.
pub async fn fetch<S, R>(service: &S, path: &str) -> Response<R>
where
    S: Service<Request<Body>, Response = Response<R>> + Clone,
    S::Error: Debug,
{
    send(service, get(path, &Jar::default())).await
}

/// A `GET path` that sends the cookies of `jar` (no `Cookie` header when it is empty).
///
/// # Panics
///
/// When `path` is not a valid URI.
pub fn get(path: &str, jar: &Jar) -> Request<Body> {
    let mut req = Request::get(path);
    if !jar.0.is_empty() {
        req = req.header(http::header::COOKIE, jar.header());
    }
    req.body(Body::empty()).expect("a valid request")
}

/// Signs in through the layer's routes in `service`: `GET login` (the login route), the
/// provider at `browser` (approving by itself), then the callback; `jar` carries the cookies
/// along (an existing session, if any) and ends with the new session's.
///
/// # Panics
///
/// When a step does not redirect as it should.
pub async fn sign_in<S, R>(service: &S, browser: &reqwest::Client, login: &str, jar: &mut Jar)
where
    S: Service<Request<Body>, Response = Response<R>> + Clone,
    S::Error: Debug,
    R: http_body::Body,
    R::Error: Debug,
{
    let res = send(service, get(login, jar)).await;
    assert_eq!(res.status(), http::StatusCode::SEE_OTHER);
    jar.update(&res);
    let callback = crate::at_provider(browser, &res).await;
    let res = send(service, get(&callback, jar)).await;
    let status = res.status();
    jar.update(&res);
    assert_eq!(status, http::StatusCode::SEE_OTHER, "{}", body(res).await);
}
