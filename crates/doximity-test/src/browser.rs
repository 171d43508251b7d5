use std::sync::Arc;

use doximity_mock::MockProvider;

/// A browser stand-in: a cookie jar, no automatic redirects, and the mock's CA as its only
/// trusted root.
#[derive(Clone, Debug)]
pub struct Browser {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// Its cookie jar.
    pub jar: Arc<reqwest::cookie::Jar>,
}

/// One response along a redirect chain.
#[derive(Debug)]
pub struct Hop {
    /// The URL requested.
    pub url: String,
    /// The status.
    pub status: u16,
    /// The `Location`, if any.
    pub location: Option<String>,
}

impl Browser {
    /// A browser with an empty jar.
    ///
    /// # Panics
    ///
    /// When the client cannot be built.
    pub fn new(mock: &MockProvider) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(mock.rustls_client_config())
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the browser's client builds");
        Self { http, jar }
    }

    /// A browser navigation: GET with the headers a browser sends for a top-level page.
    ///
    /// # Panics
    ///
    /// When the request fails.
    pub async fn navigate(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .header("sec-fetch-mode", "navigate")
            .send()
            .await
            .expect("request")
    }

    /// An API client's call: GET with `Accept: application/json`.
    ///
    /// # Panics
    ///
    /// When the request fails.
    pub async fn api_get(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .expect("request")
    }

    /// Navigates to `url` and follows redirects (at most 10), returning every hop and the
    /// final response.
    ///
    /// # Panics
    ///
    /// When a request fails or there are more than 10 redirects.
    pub async fn follow(&self, url: &str) -> (Vec<Hop>, reqwest::Response) {
        let mut url = url.to_owned();
        let mut hops = Vec::new();
        for _ in 0..10 {
            let res = self.navigate(&url).await;
            let location = res
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(|l| res.url().join(l).expect("location is a URL").to_string());
            hops.push(Hop {
                url: url.clone(),
                status: res.status().as_u16(),
                location: location.clone(),
            });
            match location {
                Some(next) if res.status().is_redirection() => url = next,
                _ => return (hops, res),
            }
        }
        panic!("too many redirects: {hops:?}");
    }

    /// The cookie header the jar would send to `url`.
    ///
    /// # Panics
    ///
    /// When `url` is not a URL.
    pub fn cookies_for(&self, url: &str) -> String {
        use reqwest::cookie::CookieStore as _;
        self.jar
            .cookies(&url.parse().expect("url"))
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .unwrap_or_default()
    }
}
