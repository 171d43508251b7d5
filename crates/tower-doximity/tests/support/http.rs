//! Response helpers shared by the in-process suites (`flow.rs`, `redis.rs`).

#![allow(dead_code)] // Each suite uses its own subset.

use std::collections::BTreeMap;

use axum::body::Body;
use http::Response;
use http_body_util::BodyExt;

/// A minimal cookie jar: name → value, removals honoured.
#[derive(Default, Clone, Debug)]
pub(crate) struct Jar(pub(crate) BTreeMap<String, String>);

impl Jar {
    pub(crate) fn update(&mut self, res: &Response<Body>) {
        for v in res.headers().get_all("set-cookie") {
            let s = v.to_str().unwrap();
            let pair = s.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if s.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub(crate) fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

pub(crate) async fn body(res: Response<Body>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

pub(crate) fn set_cookies(res: &Response<Body>) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}
